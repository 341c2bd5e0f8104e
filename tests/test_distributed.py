"""Two training processes on this CPU (gloo): identical replicas, different batches, rank-0-only files, exact resume."""

import json

import pytest
import torch

from amtcli.config import FeatureConfig, TrainConfig
from amtcli.errors import BadInput
from amtcli.training import distributed as ddp

TINY = {"channels": [4, 8, 8], "lstm_hidden": 8}


def _spec(ds, steps):
    from amtcli.training.loop import RunSpec

    tc = TrainConfig(
        steps=steps,
        batch_size=2,
        crop_s=2.0,
        val_every=1000,
        checkpoint_every=2,
        warmup_steps=1,
        lr=3e-3,
        precision="fp32",
        calibrate=False,
        threads=1,
    )
    return RunSpec("unet-bilstm", TINY, FeatureConfig(), tc, data=[str(ds)])


def _three_runs(ds: str, root: str) -> None:
    """Runs in every process of the group: straight 4 steps; 2 steps then resumed to 4."""
    from pathlib import Path

    from amtcli.training.loop import train_transcriber

    root = Path(root)
    train_transcriber(_spec(ds, 4), out_dir=root / "straight")
    train_transcriber(_spec(ds, 2), out_dir=root / "split")
    train_transcriber(_spec(ds, 4), out_dir=root / "split", resume=True)
    (root / f"rank{ddp.context().rank}.done").write_text(str(ddp.context().world_size))


def _fail_on_rank_1() -> None:
    if ddp.context().rank == 1:
        raise BadInput("rank one cannot go on")
    ddp.barrier()


def _replicas(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["replicas"] for r in recs if "replicas" in r]


@pytest.mark.slow
def test_two_processes_end_identical_and_resume_exactly(sine_dataset, tmp_path):
    from amtcli.training.checkpoints import load_checkpoint

    ddp.launch(_three_runs, (str(sine_dataset), str(tmp_path)), nproc=2, device="cpu")
    assert (tmp_path / "rank0.done").read_text() == (tmp_path / "rank1.done").read_text() == "2"

    straight = tmp_path / "straight"
    (replicas,) = _replicas(straight)
    assert [r["rank"] for r in replicas] == [0, 1]
    assert replicas[0]["weights_sha256"] == replicas[1]["weights_sha256"]  # the two replicas agree ...
    assert replicas[0]["data_crc32"] != replicas[1]["data_crc32"]  # ... after training on different batches
    last = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert last["step"] == 4 and len(last["rng_ranks"]) == 2
    assert ddp.state_checksum(last["model"]) == replicas[0]["weights_sha256"]  # rank 0 wrote what both hold
    # only rank 0 wrote: one config, one metrics log with one line per logged step
    assert sorted(p.name for p in straight.iterdir()) == ["checkpoints", "config.json", "metrics.jsonl"]
    steps = [json.loads(x)["step"] for x in (straight / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [4]

    resumed = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert resumed["step"] == 4
    for k in last["model"]:
        torch.testing.assert_close(last["model"][k], resumed["model"][k], rtol=0, atol=0)
    assert _replicas(tmp_path / "split")[-1][0]["weights_sha256"] == replicas[0]["weights_sha256"]


@pytest.mark.slow
def test_an_error_in_one_process_reaches_the_caller_as_one_line():
    with pytest.raises(BadInput, match="^rank one cannot go on$"):
        ddp.launch(_fail_on_rank_1, (), nproc=2, device="cpu")


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ddp.context() == ddp.DistContext(0, 1, 0)
    assert ddp.broadcast({"a": 1}) == {"a": 1}
    assert ddp.all_gather(3) == [3]
    assert ddp.mean(2.5) == 2.5
    assert ddp.on_main(lambda: 7) == 7
    with ddp.process_group("cpu") as ctx:
        assert not ctx.distributed
    assert ddp.rank_device("cuda", 3) == "cuda:3" and ddp.rank_device("cpu", 3) == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(BadInput, match="torchrun"):
        ddp.launch(_fail_on_rank_1, (), nproc=2)


def test_state_checksum_sees_every_bit():
    a = {"w": torch.zeros(3), "n": torch.tensor(5)}
    b = {"w": torch.zeros(3), "n": torch.tensor(5)}
    assert ddp.state_checksum(a) == ddp.state_checksum(b)
    b["w"][1] = torch.finfo(torch.float32).tiny  # the smallest change
    assert ddp.state_checksum(a) != ddp.state_checksum(b)
