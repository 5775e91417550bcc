"""A complete external verifier for `--verifier command:python examples/hook_verifier.py`."""

import json
import sys

for line in sys.stdin:
    request = json.loads(line)
    wanted = request["doc"]["answer"].split("####")[-1].strip()
    correct = request["completion"].strip().endswith(wanted)
    print(json.dumps({"id": request["id"], "correct": correct}), flush=True)
