"""Translations per second of pacs.008 onshore -> offshore, on one core.

    python -m bench.translate [--rounds 5] [--count 2000] [--json FILE]

The full path the pipeline calls: read + validate (onshore profile), keys, decode, directory and
calendar checks, encode for offshore (CNAPS -> HKNCC ids, Chinese -> pinyin with originals kept),
validate against the offshore profile, serialise. Two workloads:
- repeated names: the bundled sample with a fresh UETR each time; customer names repeat, as
  they do in real traffic, so transliterations come from the cache;
- distinct names: every message has debtor and creditor names never seen before, so every
  transliteration runs pypinyin.
Goal (issue 3): at least 5,000/s.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from pathlib import Path

from bench.common import line, pin_to_one_core, spread, write_json
from gateway.config import Config
from gateway.translation import Translator

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "onshore" / "pacs.008.001.08.xml"
UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红兰建国文辉鹏飞斌宇浩凯俊帆"


def messages(count: int, distinct: bool, seed: int = 7) -> list[bytes]:
    template = SAMPLE.read_text(encoding="utf-8")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = template.replace(UETR, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        text = text.replace("ON-BIZ-P8-0001", f"ON-{rng.getrandbits(64):016X}")
        if distinct:
            debtor = (
                "".join(
                    rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN) for _ in range(2)
                )
                + "贸易有限公司"
            )
            text = text.replace("上海浦江贸易有限公司", debtor)
            text = text.replace("货款 INV-2026-0042", f"货款 INV-{rng.getrandbits(32):08X}")
        out.append(text.encode("utf-8"))
    return out


def run(translator: Translator, batch: list[bytes]) -> float:
    start = time.perf_counter()
    for data in batch:
        outcome = translator.process(data, "onshore")
        if not outcome.accepted:
            raise SystemExit(f"benchmark message rejected: {outcome.error}")
    return len(batch) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=2000, help="messages per round and workload")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    pin_to_one_core()

    translator = Translator(Config())
    repeated, distinct = [], []
    for r in range(args.rounds):
        batch_rep = messages(args.count, False, seed=r)
        batch_dis = messages(args.count, True, seed=1000 + r)
        repeated.append(run(translator, batch_rep))
        distinct.append(run(translator, batch_dis))
    result = spread("repeated_names_per_s", repeated) | spread("distinct_names_per_s", distinct)
    print(f"pacs.008 onshore -> offshore, one core, {args.rounds} rounds x {args.count} messages")
    for label, values in (("repeated names", repeated), ("distinct names", distinct)):
        print(line(label, values, "translations/s", goal="  goal >= 5,000/s"))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
