import subprocess
import sys


def test_warmup_command_compiles_and_reports() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgetwin", "warmup"], capture_output=True, text=True, check=False, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "model kernels" in proc.stdout and "Done in" in proc.stdout
