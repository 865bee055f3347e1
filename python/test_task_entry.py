"""task_entry.py: the Deno tasks' entry turns an unhandled Ctrl-C into one line and status 130,
and passes exit codes and arguments through."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ENTRY = Path(__file__).resolve().parent / "task_entry.py"


def test_exit_code_and_arguments_pass_through(tmp_path) -> None:
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint(sys.argv[1:], __name__)\nsys.exit(3)\n")
    r = subprocess.run([sys.executable, str(ENTRY), str(script), "a", "--b"], capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip()) == (3, "['a', '--b'] __main__")


def test_ctrl_c_in_a_script_that_does_not_handle_it_is_one_line(tmp_path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    for cmd in ([sys.executable, str(ENTRY), str(script)], [sys.executable, str(script)]):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        if cmd[1] == str(ENTRY):
            assert (p.returncode, err) == (130, "interrupted (slow.py)\n")
        else:  # negative control: the plain interpreter prints a traceback
            assert "Traceback" in err and "KeyboardInterrupt" in err
