# Sourced by the other scripts: make .venv and install the package into it.
#   install_into_venv '.[dev]'
install_into_venv() {
    local python="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        echo "==> creating .venv"
        "$python" -m venv .venv
    fi
    echo "==> installing storybench-prompts$([ "$1" = . ] || echo " with ${1#.}") into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$1"
}
