"""The zoo: registry, resolution order, sha256 checks, offline mode, against a local fake Hub."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from zoo_support import (  # noqa: F401  (fixtures)
    COMMIT,
    REPO_ID,
    fake_hub,
    hub_env,
    make_toy_release,
    no_network,
    registry_entry,
    toy_arch,
    toy_zoo,
    write_registry,
)

from amtcli import zoo
from amtcli.errors import BadInput, ChecksumError, MissingDependency, ModelNotFound
from amtcli.zoo import hub, registry

# ------------------------------------------------------------------------------------- registry


@pytest.fixture(autouse=True)
def shipped_registry(monkeypatch):
    monkeypatch.delenv("AMT_REGISTRY", raising=False)


def test_shipped_registry_is_valid_and_bundled_files_match_it():
    entries = registry.load_registry(registry.REGISTRY_PATH)
    assert "tiny-test" in entries
    tiny = entries["tiny-test"]
    assert tiny.architecture == "unet-bilstm" and tiny.bundled == "tiny-test"
    assert tiny.size < 100_000  # "a few KB"
    for entry in entries.values():
        if entry.bundled is None:
            continue
        folder = zoo.bundled_folder(entry)
        assert folder is not None, f"{entry.name}: bundled copy missing"
        for fname, info in entry.files.items():
            path = folder / fname
            assert path.stat().st_size == info.size, f"{entry.name}/{fname}: re-run scripts/register_model.py"
            assert registry.sha256_file(path) == info.sha256, f"{entry.name}/{fname}: re-run scripts/register_model.py"


def test_registry_metrics_of_bundled_models_are_the_ones_their_cards_report():
    """`amt models list/info` show the registry's headline figures; they must be the model card's
    (a retrained model with a new card but old registry figures is caught here)."""
    for entry in registry.load_registry(registry.REGISTRY_PATH).values():
        if entry.bundled is None or not entry.metrics:
            continue
        card = (zoo.bundled_folder(entry) / "README.md").read_text()
        for key, value in entry.metrics.items():
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert shown in card, f"{entry.name}: registry metric {key}={shown} is not in its model card"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"revision": "main"}, "40-hex"),
        ({"revision": "abc"}, "40-hex"),
        ({"repo_id": "no-slash"}, "owner/name"),
        ({"files": {"config.json": {"sha256": "0" * 64, "size": 1}}}, "model.safetensors"),
        (
            {
                "files": {
                    "config.json": {"sha256": "0" * 64, "size": 1},
                    "model.safetensors": {"sha256": "xyz", "size": 1},
                }
            },
            "64 hex",
        ),
        ({"repo_id": None, "revision": None}, "neither bundled nor on the Hub"),
    ],
)
def test_registry_refuses_malformed_entries(tmp_path, change, message):
    entry = registry_entry({"config.json": b"{}", "model.safetensors": b"w"})
    entry.update(change)
    write_registry(tmp_path / "r.json", {"m": entry})
    with pytest.raises(BadInput, match=message):
        registry.load_registry(tmp_path / "r.json")


def test_registry_round_trip_and_entry_from_folder(tmp_path, toy_arch):
    files = make_toy_release(tmp_path / "rel")
    entry = registry.entry_from_folder(
        "toy", tmp_path / "rel", description="d", repo_id=REPO_ID, revision=COMMIT.upper()
    )
    assert entry.revision == COMMIT  # normalised to lower case
    assert entry.files["model.safetensors"].sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert entry.size == sum(len(b) for b in files.values())
    registry.save_registry({"toy": entry}, tmp_path / "r.json")
    assert registry.load_registry(tmp_path / "r.json")["toy"] == entry


def test_amt_registry_replaces_the_shipped_registry(tmp_path, monkeypatch):
    write_registry(
        tmp_path / "mine.json", {"only-mine": registry_entry({"config.json": b"{}", "model.safetensors": b"w"})}
    )
    monkeypatch.setenv("AMT_REGISTRY", str(tmp_path / "mine.json"))
    assert list(registry.load_registry()) == ["only-mine"]
    with pytest.raises(ModelNotFound, match="known names: only-mine"):
        zoo.resolve("tiny-test")
    monkeypatch.setenv("AMT_REGISTRY", str(tmp_path / "absent.json"))
    with pytest.raises(ModelNotFound, match="registry is missing .*AMT_REGISTRY"):
        zoo.resolve("tiny-test")


def test_unknown_name_lists_known_names():
    with pytest.raises(ModelNotFound, match="known names: .*tiny-test"):
        zoo.resolve("no-such-model")


def test_release_weights_are_reproducible(tmp_path, toy_arch):
    a = make_toy_release(tmp_path / "a", seed=3)
    b = make_toy_release(tmp_path / "b", seed=3)
    assert a["model.safetensors"] == b["model.safetensors"]  # the registry can pin a sha256


# ---------------------------------------------------------------------------------- local / bundled


def test_local_release_folder_is_loaded_as_is(tmp_path, toy_arch, no_network):
    make_toy_release(tmp_path / "mine")
    resolved = zoo.resolve_spec(str(tmp_path / "mine"))
    assert resolved.source == "local" and resolved.path == tmp_path / "mine"
    model, cfg = zoo.load_model(str(tmp_path / "mine"))
    assert cfg.architecture == "toy-net" and not model.training


def test_folder_that_is_not_a_release_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="not a release folder"):
        zoo.resolve(str(tmp_path / "empty"))
    with pytest.raises(ModelNotFound, match="no such release folder"):
        zoo.resolve(str(tmp_path / "absent"))


@pytest.mark.parametrize("offline", [False, True])
def test_bundled_model_loads_with_no_network_at_all(monkeypatch, tmp_path, no_network, offline):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there; nothing may try
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    resolved = zoo.resolve_spec("tiny-test")
    assert resolved.source == "bundled"
    model, cfg = zoo.load_model("tiny-test", device="cpu")
    assert cfg.architecture == "unet-bilstm" and type(model).__name__ == "UNetBiLSTM"
    assert not (tmp_path / "cache").exists()  # the Hub cache was never touched


def test_damaged_bundled_copy_is_refused_and_left_in_place(tmp_path, monkeypatch):
    root = tmp_path / "models"
    shutil.copytree(zoo.bundled_folder(registry.get_entry("tiny-test")), root / "tiny-test")
    weights = root / "tiny-test" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "bundled_root", lambda: root)
    with pytest.raises(ChecksumError, match="bundled model.safetensors is damaged.*reinstall"):
        zoo.load_model("tiny-test")
    assert weights.is_file()  # part of the install: reported, not deleted


# ------------------------------------------------------------------------------------ Hub download


def test_download_then_cached_second_call_makes_no_request(toy_zoo):
    fake, files = toy_zoo
    first = zoo.resolve_spec("toy")
    assert first.source == "downloaded"
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == files
    assert first.path.name == COMMIT  # the pinned revision's snapshot
    gets = [path for method, path, _ in fake.requests if method == "GET"]
    assert sorted(p.rsplit("/", 1)[1] for p in gets) == sorted(files)
    assert all(f"/{REPO_ID}/resolve/{COMMIT}/" in p for p in gets)
    user_agents = {h.get("User-Agent", h.get("user-agent", "")) for _, _, h in fake.requests}
    assert all("amtcli/0.1.0" in ua for ua in user_agents)  # library_name / library_version

    n_requests = fake.count()
    second = zoo.resolve_spec("toy")
    assert second.source == "cached" and second.path == first.path
    model, cfg = zoo.load_model("toy")
    assert fake.count() == n_requests  # no HEAD, no GET: served from the cache
    assert cfg.architecture == "toy-net"


def test_tampered_download_is_refused_deleted_and_nothing_loaded(toy_zoo, monkeypatch):
    fake, files = toy_zoo
    fake.tamper(REPO_ID, COMMIT, "model.safetensors")  # same size, consistent ETag: only our sha256 can tell
    loaded = []
    monkeypatch.setattr(zoo, "load_release", lambda *a, **k: loaded.append(a))
    with pytest.raises(ChecksumError, match="model.safetensors .* failed its checksum.*deleted from the Hub cache"):
        zoo.load_model("toy")
    assert loaded == []
    assert hub.cached_path(REPO_ID, "model.safetensors", revision=COMMIT) is None
    blobs = list((hub.hub_cache_dir() / "models--amt-test--toy" / "blobs").iterdir())
    assert hashlib.sha256(files["model.safetensors"]).hexdigest() not in {b.name for b in blobs}

    # the Hub is fixed: a retry downloads again and succeeds
    fake.add(REPO_ID, COMMIT, files)
    gets_before = fake.count("GET")
    assert zoo.resolve_spec("toy").source == "downloaded"
    assert fake.count("GET") == gets_before + 1  # only the deleted file was fetched again


def test_corrupted_cached_file_is_deleted_and_fetched_again(toy_zoo):
    fake, files = toy_zoo
    path = zoo.resolve("toy") / "config.json"
    blob = path.resolve()
    blob.write_bytes(blob.read_bytes().replace(b"toy-net", b"toy-NET"))
    with pytest.raises(ChecksumError, match="config.json .* failed its checksum.*a retry downloads it again"):
        zoo.resolve("toy")
    assert not path.exists() and not blob.exists()
    assert zoo.resolve_spec("toy").source == "downloaded"
    assert (zoo.resolve("toy") / "config.json").read_bytes() == files["config.json"]


def test_missing_file_on_the_hub_is_one_line(toy_zoo):
    fake, _ = toy_zoo
    fake.remove(REPO_ID, COMMIT, "README.md")
    with pytest.raises(ModelNotFound) as info:
        zoo.resolve("toy")
    message = str(info.value)
    assert "\n" not in message and "README.md" in message and "'toy'" in message


def test_missing_repository_and_revision_are_one_line(toy_zoo, monkeypatch, tmp_path):
    fake, files = toy_zoo
    path = tmp_path / "r2.json"
    write_registry(
        path,
        {"gone": registry_entry(files, repo_id="amt-test/gone"), "norev": registry_entry(files, revision="f" * 40)},
    )
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    with pytest.raises(ModelNotFound, match="no repository 'amt-test/gone'"):
        zoo.resolve("gone")
    with pytest.raises(ModelNotFound, match="has no revision"):
        zoo.resolve("norev")


def test_offline_without_cache_names_the_variable_and_the_model(toy_zoo, monkeypatch):
    fake, _ = toy_zoo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound) as info:
        zoo.load_model("toy")
    assert "HF_HUB_OFFLINE" in str(info.value) and "'toy'" in str(info.value)
    assert fake.count() == 0


def test_offline_with_cache_uses_it_without_requests(toy_zoo, monkeypatch):
    fake, _ = toy_zoo
    zoo.download("toy")
    n = fake.count()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, cfg = zoo.load_model("toy")
    assert cfg.architecture == "toy-net" and fake.count() == n


def test_download_reports_bytes_and_skips_the_bundled_copy(toy_zoo):
    fake, files = toy_zoo
    seen = {}
    result = zoo.download("toy", on_bytes=lambda name, n: seen.__setitem__(name, seen.get(name, 0) + n))
    assert result.source == "downloaded"
    assert seen == {name: len(data) for name, data in files.items()}
    assert zoo.download("toy").source == "cached"
    assert zoo.download("tiny-test").source == "bundled"  # nothing on the Hub to fetch
    assert zoo.locate(registry.get_entry("toy")) == "cached"


# ----------------------------------------------------------------------------------- hf:// refs


def test_hf_ref_downloads_pins_the_commit_and_verifies_etags(hub_env, toy_arch, tmp_path):
    files = make_toy_release(tmp_path / "rel")
    hub_env.add("someone/model", COMMIT, files)
    resolved = zoo.resolve_spec("hf://someone/model")  # @main
    assert resolved.source == "downloaded" and resolved.path.name == COMMIT
    gets = [p for m, p, _ in hub_env.requests if m == "GET"]
    assert any("/resolve/main/config.json" in p for p in gets)
    assert all(f"/resolve/{COMMIT}/" in p for p in gets if "config.json" not in p)  # rest pinned to that commit
    model, cfg = zoo.load_model(f"hf://someone/model@{COMMIT}")
    assert cfg.architecture == "toy-net"


def test_hf_ref_refuses_a_file_that_does_not_match_its_etag(hub_env, toy_arch, tmp_path, monkeypatch):
    files = make_toy_release(tmp_path / "rel")
    hub_env.add("someone/model", COMMIT, files)
    hub_env.tamper("someone/model", COMMIT, "model.safetensors", keep_etag=True)  # corrupted on the way
    with pytest.raises(ChecksumError, match="does not match the sha256 the Hub reported"):
        zoo.load_model("hf://someone/model")
    assert hub.cached_path("someone/model", "model.safetensors", revision=COMMIT) is None


def test_hf_ref_offline(hub_env, toy_arch, tmp_path, monkeypatch):
    files = make_toy_release(tmp_path / "rel")
    hub_env.add("someone/model", COMMIT, files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE=1"):
        zoo.resolve("hf://someone/model")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    zoo.resolve("hf://someone/model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = hub_env.count()
    assert zoo.resolve_spec("hf://someone/model").source == "cached"  # refs/main remembered
    assert hub_env.count() == n


@pytest.mark.parametrize("spec", ["hf://", "hf://just-one", "hf://a/b/c"])
def test_bad_hf_refs(spec):
    with pytest.raises(BadInput, match="hf://owner/repo"):
        zoo.resolve(spec)


# ------------------------------------------------------------------------------------------ device


def test_resolve_device():
    import torch

    assert zoo.resolve_device("cpu") == "cpu"
    assert zoo.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BadInput, match="expected auto, cpu"):
        zoo.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MissingDependency, match="CUDA is not available"):
            zoo.load_model("tiny-test", device="cuda")
