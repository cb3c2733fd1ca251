"""A LightGBM model's trees read from its text and evaluated with numpy: the same raw scores
as `lightgbm.Booster.predict(X, raw_score=True)`, bit for bit, without importing LightGBM.

Why: importing LightGBM imports scikit-learn and SciPy, about 1.9 CPU-seconds, more than a
`forecast what-if` for one team needs for everything else (issue 17). A what-if predicts a
handful of rows with a stored pair; `ModelPair` scores those rows here and builds a LightGBM
booster only when something needs one (SHAP, or more than a few hundred rows).

Exact on purpose, by doing what LightGBM's C++ predictor does (`Tree::NumericalDecision`,
`GBDT::PredictRaw`): a cell within 1e-35 of zero is read as 0 (the C API drops it from the
row), NaN is 0 unless the split's missing type is NaN, a missing value (zero for missing type
Zero, NaN for NaN) follows the split's default direction, otherwise `value <= threshold` goes
left; the trees' leaf values are added in tree order to 0.0 in double precision. The text
holds thresholds and leaf values with 17 significant digits, which Python reads back to the
same doubles LightGBM does. `tests/models/test_trees.py` checks equality against LightGBM.

What this does not evaluate (categorical splits, linear trees, several classes, averaged
output): `parse` returns None and the caller uses LightGBM.

Pure: text in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# LightGBM's kZeroThreshold, a C++ float: 1e-35f read as a double.
ZERO_THRESHOLD = float(np.float32(1e-35))
MISSING_ZERO, MISSING_NAN = 1, 2
DEFAULT_LEFT = 2
ROWS_PER_BLOCK = 2048  # rows evaluated at once: a block's node table is rows x trees


@dataclass(frozen=True)
class Trees:
    """Every tree's internal nodes and leaves, concatenated. A child is an internal node's
    index (>= 0) or ~leaf (< 0), over all trees; `roots` likewise, one per tree."""

    n_features: int
    roots: np.ndarray  # int64 (trees,)
    feature: np.ndarray  # int64 (nodes,)
    threshold: np.ndarray  # float64 (nodes,)
    missing: np.ndarray  # int8 (nodes,): 0 None, 1 Zero, 2 NaN
    default_left: np.ndarray  # bool (nodes,)
    left: np.ndarray  # int64 (nodes,)
    right: np.ndarray  # int64 (nodes,)
    leaf_value: np.ndarray  # float64 (leaves,)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw scores of the rows of `X` (float64, one column per model feature)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"the model reads {self.n_features} features; got an array of shape {X.shape}"
            )
        # As the C API hands rows to the predictor: a cell within 1e-35 of zero is not there.
        X = np.where(np.abs(X) <= ZERO_THRESHOLD, 0.0, X)
        out = np.zeros(len(X))
        for start in range(0, len(X), ROWS_PER_BLOCK):
            block = X[start : start + ROWS_PER_BLOCK]
            out[start : start + len(block)] = self._block(block)
        return out

    def _block(self, X: np.ndarray) -> np.ndarray:
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        rows, trees = np.nonzero(node >= 0)
        while len(rows):
            at = node[rows, trees]
            value = X[rows, self.feature[at]]
            missing = self.missing[at]
            nan = np.isnan(value)
            value = np.where(nan & (missing != MISSING_NAN), 0.0, value)
            by_default = ((missing == MISSING_ZERO) & (np.abs(value) <= ZERO_THRESHOLD)) | (
                (missing == MISSING_NAN) & np.isnan(value)
            )
            go_left = np.where(by_default, self.default_left[at], value <= self.threshold[at])
            nxt = np.where(go_left, self.left[at], self.right[at])
            node[rows, trees] = nxt
            inner = nxt >= 0
            rows, trees = rows[inner], trees[inner]
        leaves = self.leaf_value[~node]
        # Tree by tree from 0.0, as GBDT::PredictRaw adds them (a sum in another order could
        # round differently).
        out = np.zeros(len(X))
        for t in range(leaves.shape[1]):
            out += leaves[:, t]
        return out


def parse(text: str) -> Trees | None:
    """The trees of a LightGBM text model, or None when the model holds something `Trees`
    does not evaluate."""
    header, _, body = text.partition("\nTree=")
    fields = dict(line.partition("=")[::2] for line in header.splitlines() if "=" in line)
    if not body or "max_feature_idx" not in fields:
        return None
    if fields.get("num_tree_per_iteration", "1") != "1" or "average_output" in fields:
        return None
    trees, _, rest = body.partition("\nend of trees")
    at = rest.rfind("pandas_categorical:")
    categorical = rest[at:].split("\n", 1)[0].strip() if at >= 0 else ""
    if categorical not in ("", "pandas_categorical:null", "pandas_categorical:[]"):
        return None  # categories of pandas columns, mapped to codes by LightGBM's wrapper
    blocks = [
        dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        for block in trees.split("\nTree=")
    ]
    return _concatenate(blocks, int(fields["max_feature_idx"]) + 1)


def _numbers(text: str, kind: type) -> list:
    return [kind(v) for v in text.split()]


def _concatenate(blocks: list[dict[str, str]], n_features: int) -> Trees | None:
    roots, feature, threshold, decision, left, right, leaves = [], [], [], [], [], [], []
    for block in blocks:
        if block.get("num_cat", "0") != "0" or block.get("is_linear", "0") != "0":
            return None
        n_leaves = int(block["num_leaves"])
        nodes, leaf0 = len(feature), len(leaves)
        values = _numbers(block["leaf_value"], float)
        if len(values) != n_leaves:
            return None
        leaves += values
        if n_leaves == 1:
            roots.append(~leaf0)
            continue
        roots.append(nodes)
        feature += _numbers(block["split_feature"], int)
        threshold += _numbers(block["threshold"], float)
        decision += _numbers(block["decision_type"], int)
        for side, out in (("left_child", left), ("right_child", right)):
            # Within a tree a child is a node index or ~leaf; shift both to the whole.
            out += [c + nodes if c >= 0 else ~(~c + leaf0) for c in _numbers(block[side], int)]
    kinds = np.asarray(decision, dtype=np.int64)
    if (kinds & 1).any():  # a categorical split
        return None
    return Trees(
        n_features=n_features,
        roots=np.asarray(roots, dtype=np.int64),
        feature=np.asarray(feature, dtype=np.int64),
        threshold=np.asarray(threshold, dtype=np.float64),
        missing=((kinds >> 2) & 3).astype(np.int8),
        default_left=(kinds & DEFAULT_LEFT) > 0,
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        leaf_value=np.asarray(leaves, dtype=np.float64),
    )


__all__ = ["Trees", "parse"]
