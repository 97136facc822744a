"""The accelerate configs in recipes/accelerate/ load, and the launch command is the documented one."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1ci_core.launch import ACCELERATE_DIR, accelerate_command, accelerate_config_path


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero2", "DEEPSPEED"),
                                        ("zero3", "DEEPSPEED")])
def test_configs_load(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(accelerate_config_path(name)))
    assert cfg.distributed_type.name == kind
    if name.startswith("zero"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # save_model writes a loadable checkpoint


def test_launch_command(tmp_path: Path) -> None:
    cmd = accelerate_command(tmp_path / "spec.json", 4, "zero3", port=29555)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--config_file") + 1] == str(ACCELERATE_DIR / "zero3.yaml")
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[cmd.index("--main_process_port") + 1] == "29555"
    assert cmd[-4:] == ["-m", "r1ci_core.launch", "sft", str(tmp_path / "spec.json")]
    own = tmp_path / "mine.yaml"
    own.write_text("distributed_type: MULTI_GPU\n")
    assert accelerate_command(own, 2, str(own))[4] == str(own.resolve())
