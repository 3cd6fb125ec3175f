"""Translations per second of pacs.008 onshore -> offshore, on one core.

    python -m bench.translate [--rounds 5] [--count 2000] [--processes N] [--json FILE]

The full path the pipeline calls: read + validate (onshore profile), keys, decode, directory and
calendar checks, encode for offshore (CNAPS -> HKNCC ids, Chinese -> pinyin with originals kept),
validate against the offshore profile, serialise. Two workloads:
- repeated names: the bundled sample with a fresh UETR each time; customer names repeat, as
  they do in real traffic, so transliterations come from the cache;
- distinct names: every message has debtor and creditor names never seen before, so every
  transliteration segments and reads them afresh (gateway/pinyin.py).
`--processes N` (default: the CPUs this process may use) runs the repeated-names workload again
in 1, 2, 4 ... and N processes at once, each pinned to its own CPU, and reports their combined
rate: how translation scales with cores (`gateway.workers` and instances add cores).
Goal (issue 3): at least 5,000/s on one core.

Each workload is also reported as a ratio to the libxml2 floor, measured in the same run on
the same messages: parse and validate the input against its profile, then serialise, parse
and validate the output against the target's (what any translation must at least do, with
nothing in between). A third workload, rich, is the CBPR+ "max" pacs.008 of the public corpus
(cbpr-usage-rules, adapted to this directory by tests/corpus.py): 765 element paths, carried
whole. Goal (issue 15): at least 0.5 of the floor for the sample and the rich message.

Signatures: the sample again, each message signed by its sender (ECDSA P-256), through a
translator that verifies it against the directory and signs its output with the gateway's
key; reported as the cost of the signed path over the unsigned one, same messages, same run.
And the signature work alone (verify the signed message, sign the unsigned one, trees parsed
beforehand) against bare python-xmlsec doing the same two things to the same messages with
keys loaded once: the gateway's C14N + cryptography against a general XML-DSig engine.
Goals (issue 26): translation at least 0.3 of the floor on the sample, 0.5 on the rich
message; the signed path at most 1.6 x the unsigned one; the signature work at most 1.1 x
bare xmlsec.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import statistics
import time
import uuid
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from lxml import etree

from bench.common import line, pin_to_one_core, spread, usable_cpus, write_json
from gateway.config import Config
from gateway.iso20022.reader import read_message
from gateway.translation import Translator

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "onshore" / "pacs.008.001.08.xml"
UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红兰建国文辉鹏飞斌宇浩凯俊帆"


# Issue 26: the least share of the libxml2 floor each workload must reach.
GOALS = {"sample": 0.3, "rich": 0.5}


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


def rich_messages(count: int, seed: int = 11) -> list[bytes]:
    """The adapted CBPR+ max pacs.008 (onshore), a fresh UETR and BizMsgIdr each time."""
    from tests.corpus import adapt, examples

    example = next(e for e in examples() if e.year == "y2026" and e.name == "pacs.008.max")
    config = Config()
    template = adapt(
        example.path.read_bytes(), "onshore", config, Translator(config).directory.current()
    ).decode("utf-8")
    uetr = template.split("<UETR>", 1)[1].split("<", 1)[0]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = template.replace(uetr, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        text = text.replace("<BizMsgIdr>", f"<BizMsgIdr>R{rng.getrandbits(48):012X}", 1)
        out.append(text.encode("utf-8"))
    return out


def floor_rate(translator: Translator, batch: list[bytes]) -> float:
    """The libxml2 floor: per message, parse + validate the input (source profile), then
    serialise + parse + validate its output (target profile). Outputs are made beforehand."""
    onshore, offshore = translator.profiles["onshore"], translator.profiles["offshore"]
    outputs = [etree.fromstring(translator.process(data, "onshore").message) for data in batch]
    msg_def = read_message(batch[0]).msg_def
    source, target = onshore.enveloped(msg_def), offshore.enveloped(msg_def)
    start = time.perf_counter()
    for data, output in zip(batch, outputs, strict=True):
        if not source.validate(etree.fromstring(data)):
            raise SystemExit(f"floor: input invalid: {source.error_log}")
        if not target.validate(etree.fromstring(etree.tostring(output))):
            raise SystemExit(f"floor: output invalid: {target.error_log}")
    return len(batch) / (time.perf_counter() - start)


def signed_translator(folder: Path) -> tuple[Translator, Any]:
    """A translator that requires signatures and signs its outputs, and the sender's identity
    (throw-away keys, made here)."""
    from tests.signing import directory_with, identity, signing_config

    sender, gateway = identity("HPCBCNSHXXX"), identity("SHHKCNSHGWY")
    directory = directory_with(folder, {"HPCBCNSHXXX": [sender]})
    return Translator(signing_config(folder, directory, gateway)), sender


def signature_work(
    translator: Translator, key_pem: bytes, signed_batch: list[bytes], batch: list[bytes]
) -> tuple[float, float]:
    """(the gateway's, bare xmlsec's) verify + sign of the same messages, µs each."""
    import xmlsec

    from gateway.iso20022.reader import hardened_parser
    from gateway.signatures import DS, verify

    parser = hardened_parser(remove_comments=True)
    directory, now = translator.directory.current(), translator.clock()
    signer = translator.signer
    assert signer is not None
    public = xmlsec.Key.from_memory(
        _public_key_pem(signed_batch[0], directory), xmlsec.constants.KeyDataFormatPem
    )
    private = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)

    def trees() -> tuple[list[etree._Element], list[etree._Element]]:
        return (
            [etree.fromstring(d, parser) for d in signed_batch],
            [etree.fromstring(d, parser) for d in batch],
        )

    to_verify, to_sign = trees()
    start = time.perf_counter()
    for a, b in zip(to_verify, to_sign, strict=True):
        assert verify(a, directory, now) is not None
        signer.sign(b)
    ours = (time.perf_counter() - start) / len(batch) * 1e6

    to_verify, to_sign = trees()
    start = time.perf_counter()
    for a, b in zip(to_verify, to_sign, strict=True):
        ctx = xmlsec.SignatureContext()
        ctx.key = public
        ctx.verify(next(a.iter(f"{{{DS}}}Signature")))
        header = b[0]
        place = etree.SubElement(header, header.tag.replace("AppHdr", "Sgntr"))
        signature = xmlsec.template.create(
            b, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformEcdsaSha256
        )
        place.append(signature)
        ref = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256, uri="")
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
        ctx = xmlsec.SignatureContext()
        ctx.key = private
        ctx.sign(signature)
    bare = (time.perf_counter() - start) / len(batch) * 1e6
    return ours, bare


def _public_key_pem(data: bytes, directory: Any) -> bytes:
    """The PEM public key of the certificate that signed `data` (the sender's, in the
    directory)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from gateway.signatures import _public_key

    root = etree.fromstring(data)
    sender = root.findtext(".//{*}Fr//{*}BICFI")
    participant = directory.signatory(sender)
    key = _public_key(participant.certificates[0].pem)
    return bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


def run(translator: Translator, batch: list[bytes]) -> float:
    start = time.perf_counter()
    for data in batch:
        outcome = translator.process(data, "onshore")
        if not outcome.accepted:
            raise SystemExit(f"benchmark message rejected: {outcome.error}")
    return len(batch) / (time.perf_counter() - start)


def _in_parallel(index: int, count: int, seed: int, start: Barrier, out: Any) -> None:
    """One of several processes: pinned to its own CPU, it translates `count` messages once
    all of them are ready, and reports when it started and ended (CLOCK_MONOTONIC: one clock
    for every process on the machine)."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
    translator = Translator(Config())
    run(translator, messages(50, False, seed=seed + 500))  # warm: caches, first-use imports
    batch = messages(count, False, seed=seed)
    start.wait()
    began = time.monotonic()
    run(translator, batch)
    out.put((began, time.monotonic()))


def parallel_rate(processes: int, count: int, seed: int) -> float:
    """Translations/s of `processes` processes at once: all their messages over the span from
    the first start to the last end."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_in_parallel, args=(i, count, seed + i, barrier, out))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    spans: list[tuple[float, float]] = []
    while len(spans) < processes:
        try:
            spans.append(out.get(timeout=1))
        except queue.Empty:
            # One that died never reaches the barrier: the others would wait for it forever.
            if any(w.exitcode not in (None, 0) for w in workers):
                for w in workers:
                    w.kill()
                raise SystemExit("a translating process failed") from None
    for w in workers:
        w.join()
    return processes * count / (max(e for _, e in spans) - min(b for b, _ in spans))


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=2000, help="messages per round and workload")
    ap.add_argument(
        "--processes",
        type=int,
        default=usable_cpus(),
        help="scale up to this many processes at once (1: no scaling run)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    # Before pinning: the processes go to CPUs of their own.
    counts = sorted({1, args.processes} | {2**k for k in range(8) if 2**k < args.processes})
    scaling: dict[int, list[float]] = {
        n: [parallel_rate(n, args.count, seed=2000 + 10 * r) for r in range(args.rounds)]
        for n in (counts if args.processes > 1 else [])
    }
    pin_to_one_core()

    translator = Translator(Config())
    repeated, distinct, rich = [], [], []
    floors: dict[str, list[float]] = {"sample": [], "rich": []}
    ratios: dict[str, list[float]] = {"sample": [], "rich": []}
    for r in range(args.rounds):
        batch_rep = messages(args.count, False, seed=r)
        batch_dis = messages(args.count, True, seed=1000 + r)
        batch_rich = rich_messages(args.count // 4, seed=3000 + r)  # ~10x the bytes each
        repeated.append(run(translator, batch_rep))
        distinct.append(run(translator, batch_dis))
        rich.append(run(translator, batch_rich))
        # The floor right after the translation of the same messages: one run, one ratio.
        floors["sample"].append(floor_rate(translator, batch_rep))
        floors["rich"].append(floor_rate(translator, batch_rich))
        ratios["sample"].append(repeated[-1] / floors["sample"][-1])
        ratios["rich"].append(rich[-1] / floors["rich"][-1])
    import tempfile

    from tests.signing import signed

    with tempfile.TemporaryDirectory() as folder:
        signing, sender = signed_translator(Path(folder))
        key_pem = (Path(folder) / "gw.key").read_bytes()
        unsigned_rates, signed_rates, costs = [], [], []
        work: dict[str, list[float]] = {"ours": [], "xmlsec": [], "ratio": []}
        for r in range(args.rounds):
            batch = messages(args.count // 2, False, seed=5000 + r)
            signed_batch = [signed(data, sender) for data in batch]
            unsigned_rates.append(run(translator, batch))
            signed_rates.append(run(signing, signed_batch))
            costs.append(unsigned_rates[-1] / signed_rates[-1])
            ours, bare = signature_work(signing, key_pem, signed_batch, batch)
            work["ours"].append(ours)
            work["xmlsec"].append(bare)
            work["ratio"].append(ours / bare)
    result = (
        spread("signed_per_s", signed_rates)
        | spread("unsigned_per_s", unsigned_rates)
        | spread("signature_cost", costs)
        | spread("signature_work_us", work["ours"])
        | spread("xmlsec_work_us", work["xmlsec"])
        | spread("signature_work_ratio", work["ratio"])
        | spread("repeated_names_per_s", repeated)
        | spread("distinct_names_per_s", distinct)
        | spread("rich_per_s", rich)
        | spread("floor_sample_per_s", floors["sample"])
        | spread("floor_rich_per_s", floors["rich"])
        | spread("ratio_sample_to_floor", ratios["sample"])
        | spread("ratio_rich_to_floor", ratios["rich"])
    )
    print(f"pacs.008 onshore -> offshore, one core, {args.rounds} rounds x {args.count} messages")
    for label, values in (("repeated names", repeated), ("distinct names", distinct)):
        print(line(label, values, "translations/s"))
    print(line("rich (CBPR+ max)", rich, "translations/s"))
    print(line("floor, sample", floors["sample"], "messages/s"))
    print(line("floor, rich", floors["rich"], "messages/s"))
    print(line("signed (verify + sign)", signed_rates, "translations/s"))
    print(
        f"{'cost of signatures':<26} {statistics.median(costs):.2f} x the unsigned path  "
        f"(rounds: {', '.join(f'{v:.2f}' for v in costs)})  goal <= 1.6"
    )
    print(line("signature work", work["ours"], "µs a message", fmt=",.0f"))
    print(line("bare xmlsec, same work", work["xmlsec"], "µs a message", fmt=",.0f"))
    print(line("ratio to bare xmlsec", work["ratio"], "", fmt=".2f", goal="  goal <= 1.1"))
    for name in ("sample", "rich"):
        print(
            f"{'ratio to the floor, ' + name:<26} {statistics.median(ratios[name]):.2f}"
            f"  (rounds: {', '.join(f'{v:.2f}' for v in ratios[name])})  "
            f"goal >= {GOALS[name]}"
        )
    if args.processes > 1:
        print("repeated names, processes at once (each pinned to a CPU), combined:")
        one = statistics.median(scaling[1])
        for n, values in scaling.items():
            result |= spread(f"processes_{n}_per_s", values)
            factor = f"  x{statistics.median(values) / one:.2f} of one process"
            print(
                line(f"  {n} process{'es' if n > 1 else ''}", values, "translations/s", goal=factor)
            )
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
