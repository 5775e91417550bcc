"""Should monkeys-hf use bf16 on this CPU? Speed and fidelity of the embedded model.

Speed: monkeys-hf generation time for the same cloned GSM8K requests in float32 and
bfloat16. Fidelity: on the same 5-shot prompts, the KL divergence of bf16's next-token
distribution from fp32's at every prompt position, and how often their top token agrees.

    MONKEYS_DATA_DIR=../shared/data python benchmarks/bench_bf16.py [PROBLEMS K MAX_TOKENS]
"""

from __future__ import annotations

import sys
import time

import torch

from lm_eval_monkeys.models.embedded import embedded_model_args
from lm_eval_monkeys.models.hf import MonkeysHF

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_models import cloned_requests


def main() -> None:
    problems, k, max_tokens = (int(x) for x in (sys.argv[1:] or [2, 8, 64]))
    args = dict(item.split("=", 1) for item in embedded_model_args().split(","))
    requests = cloned_requests(problems, k, max_tokens)
    models, timings = {}, {}
    for dtype in ("float32", "bfloat16"):
        model = MonkeysHF(seed=0, batch_size=k, device="cpu", dtype=dtype, **args)
        start = time.perf_counter()
        model.generate_until(requests, disable_tqdm=True)
        timings[dtype] = time.perf_counter() - start
        models[dtype] = model
    kls, agree, positions = [], 0, 0
    for instance in requests[::k]:
        ids = torch.tensor([models["float32"].hf.tok_encode(instance.args[0])])
        with torch.inference_mode():
            logp32 = torch.log_softmax(models["float32"].model(ids).logits[0].float(), -1)
            logp16 = torch.log_softmax(models["bfloat16"].model(ids).logits[0].float(), -1)
        kls.append((logp32.exp() * (logp32 - logp16)).sum(-1))
        agree += int((logp32.argmax(-1) == logp16.argmax(-1)).sum())
        positions += ids.shape[1]
    kl = torch.cat(kls)
    n = len(requests)
    print(
        f"{problems} problems x k={k}, {max_tokens} new tokens, {torch.get_num_threads()} threads"
    )
    for dtype, secs in timings.items():
        print(f"{dtype:>9}: {secs:.1f} s, {n / secs:.2f} samples/s")
    print(f"bf16 speed-up: {timings['float32'] / timings['bfloat16']:.2f}x")
    print(
        f"fidelity over {positions} prompt positions: mean KL(fp32||bf16) {kl.mean():.4f} nats, "
        f"max {kl.max():.3f}; top-1 agreement {agree / positions:.1%}"
    )


if __name__ == "__main__":
    main()
