"""Speed of the token Transformer on this machine: training tokens/s and greedy-decoding speed.

    nice -n 10 .venv/bin/python benchmarks/bench_transformer.py [--threads 1] [--batch 8] [--tokens 120]
        [--model '{"d_model": 64}'] [--domain]

Training: one optimizer step on a batch of ``--batch`` random 4 s segments with ``--tokens``
target tokens each (teacher forcing), bf16 autocast and fp32; ``--domain`` adds the unlabeled
batch and discriminator of domain confusion. Decoding: greedy, batched, with and without the
key/value cache, reported as segments/s and as the real-time factor of 4 s segments. Random
weights decode until ``max_tokens``; a trained model stops at ``eos`` earlier, so decoding
figures are an upper bound on the time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=120)
    ap.add_argument("--decode-tokens", type=int, default=120, help="tokens generated per segment")
    ap.add_argument("--model", default="{}", help="TransformerConfig fields as JSON")
    ap.add_argument("--domain", action="store_true")
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()

    import torch

    from amtcli.config import FeatureConfig
    from amtcli.nets import build_model
    from amtcli.nets.transformer import DomainDiscriminator
    from amtcli.training.seq2seq import decoder_inputs, domain_loss, token_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("transformer", json.loads(args.model), FeatureConfig())
    cfg = model.config
    disc = DomainDiscriminator(cfg.d_model, cfg.disc_hidden)
    opt = torch.optim.AdamW(list(model.parameters()) + list(disc.parameters()), lr=1e-4)
    b, t = args.batch, cfg.segment_frames
    x = torch.randn(b, t, 176) - 4.0
    xr = torch.randn(b, t, 176) - 4.0
    y = torch.randint(4, model.codec.vocab_size, (b, args.tokens))
    report = {
        "params": sum(p.numel() for p in model.parameters()),
        "threads": args.threads,
        "batch": b,
        "target_tokens": args.tokens,
        "domain": args.domain,
    }
    for prec in ("bf16", "fp32"):
        times = []
        for _ in range(args.repeats + 1):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                mem = model.encode(x)
                loss, _ = token_loss(model.decode(mem, decoder_inputs(y)), y)
                if args.domain:
                    dl, _ = domain_loss(disc, mem, model.encode(xr), scale=0.3)
                    loss = loss + dl
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        step = min(times[1:])
        report[f"train_{prec}_s_per_step"] = round(step, 4)
        report[f"train_{prec}_tokens_per_s"] = round(b * args.tokens / step, 1)
    model.eval()
    seg_s = t / FeatureConfig().frame_rate
    for cache in (True, False):
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model.generate(x, max_tokens=args.decode_tokens, use_cache=cache)
        dt = time.perf_counter() - t0
        key = "cached" if cache else "uncached"
        report[f"decode_{key}_segments_per_s"] = round(b / dt, 2)
        report[f"decode_{key}_x_realtime"] = round(b * seg_s / dt, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
