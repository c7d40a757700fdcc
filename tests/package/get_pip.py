"""Stands in for get-pip.py (ansible-test's pip bootstrap, downloaded from a host this machine cannot
reach): puts the pip that ensurepip bundles into the venv, then runs `pip install ARGS` with it (from PyPI)."""
import ensurepip
import os
import runpy
import sys

ensurepip.bootstrap(upgrade=True)
# get-pip's own options (not pip's): --no-setuptools, --no-wheel
sys.argv = ["pip", "install"] + [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# ansible-test runs pip with a filtered environment: keep the machine's CA bundle (a TLS proxy's)
for ca in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
    if ca and os.path.exists(ca):
        sys.argv[2:2] = ["--cert", ca]
        break
runpy.run_module("pip", run_name="__main__", alter_sys=True)
