"""Hypothesis strategies for tests/test_random_dags.py: adversarial names and random DAGs.

The name pool is collected from the emitters themselves: representative graphs
(the op-table zoo, a graph with a symbolic batch dim, a training step) are
emitted on every backend and every identifier in the emitted modules is taken
with `ast`, so a temporary a template adds tomorrow joins the pool by itself.
Hand-picked names add what no emitter writes yet: keywords, builtins, module
names, dotted names, leading underscores.

A DAG is drawn as a list of Python lines over `gc` (one line per node, each
line run as it is drawn), so a failing example prints as a reproducer that can
be pasted into a file.
"""
import builtins
import functools
import keyword
import re

import numpy as np
from hypothesis import strategies as st

import graphc as gc
from graphc.ir import shapes as S
from graphc.errors import GraphcError
from graphc.ir import graph as ir
from graphc.ir.graph import NAME_RE
from tests.astcheck import identifiers

BACKEND_EMITTERS = ("python", "numba", "numba_parallel", "cuda")


def emit_all(graph, only=None):
    """{backend: source} for every emitter, or just `only` (emitting compiles nothing)."""
    from graphc.backends.numba_cpu import emit as numba_cpu
    from graphc.backends.cuda import emit as numba_cuda
    from graphc.backends.python import emit as python
    emitters = {"python": python.emit, "numba": lambda g: numba_cpu.emit(g, parallel=False),
                "numba_parallel": lambda g: numba_cpu.emit(g, parallel=True), "cuda": numba_cuda.emit}
    return {k: fn(graph) for k, fn in emitters.items() if only in (None, k)}


def _representative_graphs():
    from graphc.train.optim import SGD
    from graphc.train.step import build_step
    from tests.codegen.zoo import build_zoo
    zoo64, _ = build_zoo("float64")
    zoo32, _ = build_zoo("float32")
    b = gc.Builder("batch")
    x, y, w = b.input("x", ("N", 3)), b.input("y", ("N",), "int64"), b.param("w", (3, 4))
    h = gc.tanh(x @ w)
    loss = gc.cross_entropy(h, y) + gc.mean(gc.logsumexp(h, axis=1) * gc.max(x, axis=1, keepdims=False))
    model = b.output(loss=loss)
    return [zoo64, zoo32, gc.grad(model, wrt=["x", "w"]), build_step(model, SGD(lr=0.1))]


@functools.lru_cache(maxsize=1)
def emitter_identifiers():
    """Every identifier the emitters write, minus those derived from the graphs' own names."""
    found, user = set(), set()
    for graph in _representative_graphs():
        user |= {graph.name_of(n) for n in graph.nx.nodes} | set(graph.outputs)
        for source in emit_all(graph).values():
            found |= identifiers(source)
    # Auto names (op_k) are the IR's, not the user's: keep them and what derives from them.
    given = {u for u in user if not re.fullmatch(r"[a-z_]+_\d+", u) and len(u) > 1}
    kept = sorted(i for i in found if not any(u in i for u in given) and NAME_RE.fullmatch(i))
    # One representative per digit pattern (add_1 .. add_41 are one shape of name), the lowest.
    by_pattern = {}
    for i in sorted(kept, key=lambda i: (len(i), i)):
        by_pattern.setdefault(re.sub(r"\d+", "#", i), i)
    return sorted(by_pattern.values())


KEYWORD_NAMES = sorted(k for k in keyword.kwlist if NAME_RE.fullmatch(k))  # the IR's NAME_RE accepts them
HANDPICKED = sorted(set(
    [k + "_" for k in keyword.kwlist]
    + [b for b in dir(builtins) if b.islower() and not b.startswith("_")]  # sum, max, abs, range, len, float...
    + ["__import__", "__builtins__", "__name__", "__file__", "__doc__", "_", "__"]
    + ["np", "math", "numba", "numpy", "cuda", "njit", "prange", "ref", "run", "graphc", "gc", "INPUTS",
       "OUTPUTS", "DIMS", "THREADS", "TILE", "workspace", "views"]
    + ["N", "M", "D", "K", "i0", "i1", "_i0", "_i1", "_f", "_t", "_n", "_q", "_acc", "_err", "__x"]
    + ["g_x", "x_", "x_flat", "d_a_d_b", "bwd_x_1", "k0_x", "_k0_x", "np.exp", "math.inf", "a.b", "x.T",
       "inf", "nan", "Infinity", "e", "pi"]
    # names this module's own fallbacks and gc.grad's outputs use
    + ["in0", "in1", "in2", "g_in0", "g_in1", "labels", "loss", "g_loss", "hv", "gw"]))
# Names the IR must refuse, each with one clean GraphcError.
REFUSED_NAMES = ["é", "naïve", "λx", "x y", "a-b", "1x", "", 'a"b', "a'b", '"""', "a\\b", "x\n", "x;y", "a+b",
                 "x#", "\x00"]
# Graph names and output keys are free text: they may only enter code as literals or escaped comments.
FREE_TEXT = ['"""', "'''", 'a"b', "a'b", "\\", "x\\", "\\n", "line\nbreak", "é λ 中", "# no", "}{", "\x00",
             "\r", "\u2028", "tab\there", "${N}", "{0}", "%s", "-0.0", "inf"]


def pool_names():
    return st.one_of(st.sampled_from(emitter_identifiers()), st.sampled_from(HANDPICKED),
                     st.sampled_from(KEYWORD_NAMES))


def node_names():
    """A node/input name from the pool, or None (the IR's auto name, itself an emitter name)."""
    return st.one_of(pool_names(), st.none())


def free_text():
    return st.one_of(pool_names(), st.sampled_from(FREE_TEXT))


def dim_names():
    return st.one_of(st.sampled_from(["N", "range", "x", "i0", "_i0", "s", "np", "if", "len"]),
                     st.sampled_from(emitter_identifiers()), st.sampled_from(["N 2", "é", "x-1"]))


SPECIAL = [np.inf, -np.inf, np.nan, -0.0, 0.0]
K = 4  # the concrete width; logits are (D, K) and labels are drawn in [0, K)


def literal(value):
    """Python source for a constant in a reproducer line."""
    arr = np.asarray(value)
    if arr.ndim:
        return "np.array([" + ", ".join(literal(v) for v in arr.tolist()) + "])"
    v = float(arr)
    return "np.nan" if v != v else "np.inf" if v == np.inf else "-np.inf" if v == -np.inf else repr(v)


UNARY = ["gc.neg({a}{n})", "gc.tanh({a}{n})", "gc.sigmoid({a}{n})", "gc.softplus({a}{n})", "gc.erf({a}{n})",
         "gc.abs({a}{n})", "gc.relu({a}{n})", "gc.sign({a}{n})", "gc.leaky_relu({a}, 0.1{n})", "gc.elu({a}{n})",
         "gc.exp(gc.tanh({a}){n})", "gc.log({a} * {a} + 1.0{n})", "gc.log(gc.exp(gc.tanh({a})){n})",
         "gc.sqrt({a} * {a} + 1.0{n})", "gc.sqrt(gc.exp({a}){n})", "gc.pow({a}, 2.0{n})",
         "gc.cast(gc.gt({a}, 0.0), 'float64'{n})"]
BINARY = ["gc.add({a}, {b}{n})", "gc.sub({a}, {b}{n})", "gc.mul({a}, {b}{n})", "gc.div({a}, {b} * {b} + 1.0{n})",
          "gc.maximum({a}, {b}{n})", "gc.minimum({a}, {b}{n})", "gc.pow({a} * {a} + 1.0, gc.tanh({b}){n})",
          "gc.bce_with_logits({a}, gc.sigmoid({b}){n})"]
COMPARE = ["gt", "ge", "lt", "le", "eq", "ne"]


class DagDraw:
    """Draws one random DAG with hypothesis' `data`, running each line as it is drawn.

    `lines` is the reproducer; `env` holds its variables; `features` names the
    risky things drawn (for the test's KNOWN list); `feeds` are seeded arrays.
    """

    def __init__(self, data, allow_zero_dim=True, max_ops=8):
        self.data, self.max_ops = data, max_ops
        self.env = {"gc": gc, "np": np}
        self.lines, self.features, self.used = [], set(), set()
        self.floats, self.bools, self.counter = [], [], 0
        self.labels = None
        graph_name = self.text("graph_name")
        self.dim = self.draw(dim_names())
        if not NAME_RE.fullmatch(self.dim):
            # The IR refuses it (test_random_dags: test_names_the_ir_refuses_get_one_clean_error).
            self.lines.append(f"# dim {self.dim!r} is refused by the IR: N instead")
            self.features.add("dim_name_not_identifier")
            self.dim = "N"
        elif self.dim != "N":
            self.features.add("dim_name")
        self.size = self.draw(st.sampled_from([3, 1, 2] + ([0] if allow_zero_dim else [])))
        if self.size == 0:
            self.features.add("zero_size_dim")
        if ir.GRAPH_NAME_RE.fullmatch(graph_name):
            self.run(f"b = gc.Builder({graph_name!r})", fatal=True)
        else:  # refused by the IR: set behind its back, so the emitters' literal policy is tested on its own
            self.run("b = gc.Builder('g')", fatal=True)
            self.run(f"b.graph.name = {graph_name!r}", fatal=True)

    def draw(self, strategy):
        return self.data.draw(strategy)

    def name(self):
        """A node name from the pool, with its kind noted in `features`."""
        name = self.draw(node_names())
        if name is not None:
            self.features.add("keyword_name" if name in KEYWORD_NAMES else
                              "handpicked_name" if name in HANDPICKED else "emitter_name")
        return name

    def text(self, what):
        """A graph name or output key: a pool name or free text."""
        text = self.draw(free_text())
        self.features.add(f"{what}_text" if text in FREE_TEXT else f"{what}_pool")
        return text

    def run(self, line, var=None, fatal=False):
        """Run one reproducer line; a clean GraphcError drops it (the IR refused), anything else fails."""
        try:
            exec(line, self.env)
        except GraphcError as e:
            if fatal:
                raise
            self.lines.append(f"# refused ({type(e).__name__}): {line}")
            return False
        except Exception as e:
            raise AssertionError(f"building the graph raised a non-graphc {type(e).__name__}: {e}\n"
                                 + self.reproducer(line)) from e
        self.lines.append(line)
        return True

    def reproducer(self, extra=""):
        return "\n".join(["import numpy as np", "import graphc as gc", *self.lines, extra])

    # ----- leaves ------------------------------------------------------------------
    def shape_choices(self):
        d = self.dim
        return [(), (d,), (d, K), (K,), (1, K), (2, d, K)]

    def add_inputs(self):
        for k in range(self.draw(st.integers(1, 3))):
            name = self.name() or f"in{k}"
            shape = self.draw(st.sampled_from(self.shape_choices()))
            kind = self.draw(st.sampled_from(["input", "param"]))
            var = self.new_var()
            if not self.run(f"{var} = b.{kind}({name!r}, {shape!r})"):
                self.run(f"{var} = b.{kind}('in{k}_{self.counter}', {shape!r})", fatal=True)
            self.floats.append(var)

    def labels_var(self):
        if self.labels is None:
            name = self.name() or "labels"
            var = self.new_var()
            if not self.run(f"{var} = b.input({name!r}, ({self.dim!r},), 'int64')"):
                self.run(f"{var} = b.input('labels_', ({self.dim!r},), 'int64')", fatal=True)
            self.labels = var
        return self.labels

    def new_var(self):
        self.counter += 1
        return f"v{self.counter}"

    # ----- nodes --------------------------------------------------------------------
    def shape(self, var):
        return self.env[var].shape

    def compatible(self, a, pool):
        out = []
        for v in pool:
            try:
                S.broadcast(self.shape(a), self.shape(v))
                out.append(v)
            except GraphcError:
                pass
        return out

    def name_arg(self):
        name = self.name()
        return "" if name is None else f", name={name!r}"

    def add_node(self):
        kind = self.draw(st.sampled_from(["unary", "binary", "const", "literal", "compare", "where", "reduce",
                                          "softmax", "matmul", "transpose", "reshape", "broadcast", "xent"]))
        made = getattr(self, "_" + kind)()
        if made is None:
            return
        template, operands, out_list = made
        var = self.new_var()
        if self.run(f"{var} = " + template.format(n=self.name_arg(), **operands)):
            self.used.update(operands.values())
            out_list.append(var)

    def _pick(self, pool=None):
        return self.draw(st.sampled_from(pool or self.floats))

    def _unary(self):
        return self.draw(st.sampled_from(UNARY)), {"a": self._pick()}, self.floats

    def _binary(self):
        a = self._pick()
        return self.draw(st.sampled_from(BINARY)), {"a": a, "b": self._pick(self.compatible(a, self.floats))}, self.floats

    def _const(self):
        value = self.draw(st.one_of(st.sampled_from(SPECIAL), st.floats(-3, 3),
                                    st.lists(st.sampled_from(SPECIAL + [1.5, -2.0]), min_size=K, max_size=K)))
        self._note_specials(value)
        return f"b.const({literal(value)}{{n}})", {}, self.floats

    def _literal(self):
        value = self.draw(st.sampled_from(SPECIAL + [0.5]))
        self._note_specials(value)
        op = self.draw(st.sampled_from(["add", "sub", "mul", "maximum", "minimum"]))
        return f"gc.{op}({{a}}, {literal(value)}{{n}})", {"a": self._pick()}, self.floats

    def _note_specials(self, value):
        for v in np.ravel(value):
            if not np.isfinite(v):
                self.features.add("const_" + ("nan" if v != v else "inf"))
            elif v == 0 and np.signbit(v):
                self.features.add("const_neg_zero")

    def _compare(self):
        a = self._pick()
        op = self.draw(st.sampled_from(COMPARE))
        return f"gc.{op}({{a}}, {{b}}{{n}})", {"a": a, "b": self._pick(self.compatible(a, self.floats))}, self.bools

    def _where(self):
        if not self.bools:
            return self._compare()
        c = self._pick(self.bools)
        a = self._pick(self.compatible(c, self.floats) or [None])
        if a is None:
            return None
        b = self._pick(self.compatible(a, self.compatible(c, self.floats)))
        return "gc.where({c}, {a}, {b}{n})", {"c": c, "a": a, "b": b}, self.floats

    def _axes(self, ndim):
        if ndim == 0:
            return None
        axes = self.draw(st.lists(st.integers(-ndim, ndim - 1), max_size=ndim, unique_by=lambda i: i % ndim))
        if not axes:
            return None
        return axes[0] if len(axes) == 1 and self.draw(st.booleans()) else tuple(axes)

    def _reduce(self):
        a = self._pick()
        op = self.draw(st.sampled_from(["sum", "max", "mean", "logsumexp"]))
        ndim = len(self.shape(a))
        if op == "logsumexp" and ndim == 0:
            return None
        axes, keep = self._axes(ndim), self.draw(st.booleans())
        return f"gc.{op}({{a}}, axis={axes!r}, keepdims={keep}{{n}})", {"a": a}, self.floats

    def _softmax(self):
        a = self._pick()
        ndim = len(self.shape(a))
        if ndim == 0:
            return None
        op, axis = self.draw(st.sampled_from(["softmax", "log_softmax"])), self.draw(st.integers(-ndim, ndim - 1))
        return f"gc.{op}({{a}}, axis={axis}{{n}})", {"a": a}, self.floats

    def _matmul(self):
        a = self._pick()
        sa = self.shape(a)
        if len(sa) not in (1, 2):
            return None
        partners = [v for v in self.floats if len(self.shape(v)) in (1, 2) and self.shape(v)[0] == sa[-1]]
        if partners and self.draw(st.booleans()):
            return "gc.matmul({a}, {b}{n})", {"a": a, "b": self._pick(partners)}, self.floats
        if len(sa) == 1:
            return "gc.matmul({a}, {a}{n})", {"a": a}, self.floats
        return "gc.matmul({a}, gc.transpose({a}){n})", {"a": a}, self.floats

    def _transpose(self):
        a = self._pick()
        ndim = len(self.shape(a))
        if ndim < 2:
            return None
        perm = list(self.draw(st.permutations(range(ndim))))
        if self.draw(st.booleans()):
            self.features.add("negative_perm")
            perm = [p - ndim for p in perm]
        return f"gc.transpose({{a}}, {tuple(perm)!r}{{n}})", {"a": a}, self.floats

    def _reshape(self):
        a = self._pick()
        shape = self.shape(a)
        choices = [shape + (1,), (1,) + shape]
        choices += [shape[:i] + shape[i + 1:] for i, d in enumerate(shape) if d == 1]
        choices += [shape[:i] + (2, 2) + shape[i + 1:] for i, d in enumerate(shape) if d == 4]
        choices += [shape[:i] + (-1,) + shape[i + 1:] for i in range(len(shape))]
        target = self.draw(st.sampled_from(choices))
        if -1 in target:
            self.features.add("reshape_minus_one")
        return f"gc.reshape({{a}}, {target!r}{{n}})", {"a": a}, self.floats

    def _broadcast(self):
        a = self._pick()
        prefix = self.draw(st.sampled_from([(2,), (self.dim,), (1,), (3, 1)]))
        shape = self.shape(a)
        target = prefix + tuple(self.draw(st.sampled_from([d, 3] if d == 1 else [d])) for d in shape)
        return f"gc.broadcast_to({{a}}, {target!r}{{n}})", {"a": a}, self.floats

    def _xent(self):
        logits = [v for v in self.floats if self.shape(v) == (self.dim, K)]
        if not logits:
            return None
        fn = self.draw(st.sampled_from(["softmax_cross_entropy", "cross_entropy"]))
        return f"gc.{fn}({{a}}, {{y}}{{n}})", {"a": self._pick(logits), "y": self.labels_var()}, self.floats

    # ----- the whole graph -------------------------------------------------------------
    def build(self):
        """Draw the DAG; returns (gradient graph or None when the IR refused it, loss key)."""
        self.add_inputs()
        leaves = list(self.floats)
        for _ in range(self.draw(st.integers(1, self.max_ops))):
            self.add_node()
        made = [v for v in self.floats if v not in leaves and self.env[v].op != "const"]
        sinks = [v for v in made if v not in self.used] or leaves
        terms = " + ".join(f"gc.sum({v})" for v in sinks)
        if not self.run(f"loss = gc.mul({terms}, 1.0{self.name_arg()})"):
            self.run(f"loss = gc.mul({terms}, 1.0)", fatal=True)
        loss_key = self.text("output_key")
        outs = {loss_key: "loss"}
        for v in self.draw(st.lists(st.sampled_from(made or leaves), max_size=2, unique=True)):
            outs.setdefault(self.text("output_key"), v)
        text = "{" + ", ".join(f"{k!r}: {v}" for k, v in outs.items()) + "}"
        if not self.run(f"graph = b.output(**{text})"):
            return None, loss_key
        wrt = [self.env[v].name for v in leaves]
        if not self.run(f"grads = gc.grad(graph, loss={loss_key!r}, wrt={wrt!r})"):
            return None, loss_key
        params = [self.env[v].name for v in leaves if self.env[v].op == "param"]
        if params and self.draw(st.booleans()):
            return self.train_step(loss_key), loss_key
        if self.draw(st.booleans()):
            self.second_order(wrt)
        return self.env["grads"], loss_key

    def train_step(self, loss_key):
        """A training step (graph.updates write each param's new value): None if refused."""
        self.features.add("train_step")
        opt = self.draw(st.sampled_from(["SGD(lr=0.1)", "Momentum(lr=0.1)", "Adam()"]))
        self.run("from graphc.train.optim import SGD, Momentum, Adam\nfrom graphc.train.step import build_step")
        if not self.run(f"step = build_step(graph, {opt}, loss={loss_key!r})"):
            return None
        return self.env["step"]

    def second_order(self, wrt):
        """Differentiate again through a forward node that reads a gradient (a
        Hessian-vector product's shape): emitters must follow dependency order."""
        self.features.add("second_order")
        w = self.draw(st.sampled_from(wrt))
        key = self.text("output_key")
        if key in self.env["grads"].outputs:
            return
        self.run(f"gw, w = gc.Value(grads, grads.grads[{w!r}]), gc.Value(grads, grads.find({w!r}))")
        if self.run(f"hv = gc.sum(gw * gc.tanh(w){self.name_arg()})"):
            self.run(f"grads.set_output(hv.node, {key!r})")
            self.run(f"grads = gc.grad(grads, loss={key!r}, wrt={wrt!r})")

    def feeds(self, graph, seed):
        rng = np.random.default_rng(seed)
        dims = {self.dim: self.size}
        out = {}
        for n in graph.nodes_with_op("input", "param"):
            shape = S.bind(graph.shape(n), dims)
            if graph.dtype(n) == "int64":
                out[graph.name_of(n)] = rng.integers(0, K, size=shape).astype(np.int64)
            elif graph.node(n)["attrs"].get("role") == "state" or graph.node(n)["phase"] == "update":
                out[graph.name_of(n)] = rng.random(shape)  # optimizer state and hyperparameters: [0, 1)
            else:
                out[graph.name_of(n)] = rng.standard_normal(shape) * 1.5
        text = ", ".join(f"{k!r}: np.array({a.tolist()!r}, {a.dtype.name!r}).reshape({a.shape!r})"
                         for k, a in out.items())
        self.lines.append(f"feeds = {{{text}}}  # seed {seed}, {self.dim!r} = {self.size}")
        return out
