# Sourced by .ci/run: nothing inherited may skip or reshape a CI stage. Clears the opt-outs
# (NETOPT_DATAPLANE_OPTIONAL, NETOPT_E2E_OPTIONAL and every other NETOPT_* switch), pytest's options
# (PYTEST_ADDOPTS, PYTEST_PLUGINS, the Makefile's PYTEST_ARGS), the Makefile's other variables and Python path
# overrides; sets CI=true, under which a skipped test fails (tests/strict_skips.py).
for name in $(compgen -e); do
  case $name in
    NETOPT_*|PYTEST_*|PYTHONPATH|PYTHONHOME|PYTHONSTARTUP|PYTHONNOUSERSITE|STACK|FORMAT|VENV|PY|MAKEFLAGS|MFLAGS|MAKEFILES) unset "$name" ;;
  esac
done
export CI=true
