"""Convert the LIVE-trained BRISQUE model of the PyPI package ``brisque`` into pixcamd's data file.

The package (``brisque`` 0.2.0, Rehan Guha, Apache-2.0, https://github.com/rehanguha/brisque) ships
its ε-SVR as a libsvm text model (``models/svm.txt``) and the feature scaling as a pickle
(``models/normalize.pickle``). pixcamd reads neither at run time: this script turns them once into
``pixcamd/models/data/brisque_live.npz``, which needs only numpy to load.

Usage::

    python tools/convert_brisque_model.py /path/to/site-packages/brisque
    python tools/convert_brisque_model.py --svm svm.txt --normalize normalize.pickle --out x.npz

The npz holds (all float64 unless stated):
    support_vectors  (n_sv, 36)  support vectors, in the scaled [-1, 1] feature space
    dual_coef        (n_sv,)     SV coefficients (alpha_i - alpha_i*)
    rho              ()          the decision-function offset: f(x) = Σ coef·K(x, sv) − rho
    gamma            ()          RBF kernel parameter: K(x, y) = exp(−gamma·‖x − y‖²)
    feature_min      (36,)       min_ of normalize.pickle
    feature_max      (36,)       max_ of normalize.pickle

Support vectors are stored exactly as libsvm reads them (strtod of the text, i.e. float64), so the
conversion is lossless.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

N_FEATURES = 36
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "pixcamd" / "models" / "data" / "brisque_live.npz"


def parse_libsvm_model(path: Path) -> dict:
    """Parse a libsvm ``svm_save_model`` text file of a single-output ε-SVR with an RBF kernel."""
    header: dict[str, list[str]] = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "SV":
            sv_lines = lines[i + 1 :]
            break
        key, *values = line.split()
        header[key] = values
    else:
        raise ValueError(f"{path}: no 'SV' section")

    if header.get("svm_type") != ["epsilon_svr"] or header.get("kernel_type") != ["rbf"]:
        raise ValueError(f"{path}: expected an epsilon_svr with an rbf kernel, got {header}")
    if len(header["rho"]) != 1:
        raise ValueError(f"{path}: expected one rho, got {header['rho']}")

    coefs, rows = [], []
    for line in sv_lines:
        fields = line.split()
        if not fields:
            continue
        coefs.append(float(fields[0]))
        row = np.zeros(N_FEATURES, dtype=np.float64)  # libsvm's sparse rows omit zero features
        for item in fields[1:]:
            index, value = item.split(":")
            k = int(index)
            if not 1 <= k <= N_FEATURES:
                raise ValueError(f"{path}: feature index {k} outside 1..{N_FEATURES}")
            row[k - 1] = float(value)
        rows.append(row)

    total_sv = int(header["total_sv"][0])
    if len(rows) != total_sv:
        raise ValueError(f"{path}: header says {total_sv} SVs, found {len(rows)}")
    return {
        "support_vectors": np.stack(rows),
        "dual_coef": np.asarray(coefs, dtype=np.float64),
        "rho": np.float64(header["rho"][0]),
        "gamma": np.float64(header["gamma"][0]),
    }


def load_scaling(path: Path) -> dict:
    with open(path, "rb") as f:
        params = pickle.load(f)  # the package's own file; only ever run on a trusted copy
    lo = np.asarray([float(v) for v in params["min_"]], dtype=np.float64)
    hi = np.asarray([float(v) for v in params["max_"]], dtype=np.float64)
    if lo.shape != (N_FEATURES,) or hi.shape != (N_FEATURES,) or not np.all(hi > lo):
        raise ValueError(f"{path}: expected {N_FEATURES} min_/max_ pairs with max_ > min_")
    return {"feature_min": lo, "feature_max": hi}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "package_dir",
        nargs="?",
        type=Path,
        help="the installed/unpacked brisque package directory (holds models/svm.txt)",
    )
    parser.add_argument("--svm", type=Path, help="libsvm model (default: PACKAGE/models/svm.txt)")
    parser.add_argument(
        "--normalize", type=Path, help="scaling pickle (default: PACKAGE/models/normalize.pickle)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)

    if args.package_dir is None and (args.svm is None or args.normalize is None):
        parser.error("give the brisque package directory, or both --svm and --normalize")
    svm = args.svm or args.package_dir / "models" / "svm.txt"
    norm = args.normalize or args.package_dir / "models" / "normalize.pickle"

    data = {**parse_libsvm_model(svm), **load_scaling(norm)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): "
        f"{data['support_vectors'].shape[0]} SVs, gamma={data['gamma']}, rho={data['rho']}"
    )


if __name__ == "__main__":
    main()
