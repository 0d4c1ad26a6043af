"""The ops that are Python infix operators, spelled alike in NumPy code (the python
backend's TABLE) and in scalar code (the compiled backends' SCALAR): `a <symbol> b`."""

INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**",
         "gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}


def infix_table(parens):
    """{op: spelling} for every INFIX op; `parens` wraps each expression in (...)."""
    def spelling(symbol):
        if parens:
            return lambda a, c: f"({a[0]} {symbol} {a[1]})"
        return lambda a, c: f"{a[0]} {symbol} {a[1]}"
    return {op: spelling(symbol) for op, symbol in INFIX.items()}
