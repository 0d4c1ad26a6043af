"""The ops that NumPy code (the python backend's TABLE) and scalar code (the compiled
backends' SCALAR) spell alike: Python's operators, and one-operand functions that
`np` and `math` both have.  Each table here is written once and used by both."""

INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**",
         "gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}
FUNCTIONS = ("exp", "log", "sqrt", "tanh")  # np.<f> on arrays, math.<f> on scalars


def operator_table(parens):
    """{op: spelling}: `a <symbol> b` for each INFIX op and `-a` for neg; `parens`
    wraps each expression in (...)."""
    def wrap(text):
        return f"({text})" if parens else text

    def infix(symbol):
        return lambda a, c: wrap(f"{a[0]} {symbol} {a[1]}")
    return {**{op: infix(symbol) for op, symbol in INFIX.items()}, "neg": lambda a, c: wrap(f"-{a[0]}")}


def function_table(module, ops=FUNCTIONS):
    """{op: spelling}: `<module>.<op>(a)` for each op, e.g. np.exp(a) or math.exp(a)."""
    def call(name):
        return lambda a, c: f"{name}({a[0]})"
    return {op: call(f"{module}.{op}") for op in ops}
