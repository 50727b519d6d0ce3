#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite run made by scripts/autobahn.sh.

    autobahn_summary.py REPORT_DIR AGENT

REPORT_DIR holds cases.json (every selected case id with its description),
groups.tsv (one line per wstest run) and one directory per case group with
wstest's index.json and per-case reports. Prints Markdown: counts per
grade, then every case that is not plainly OK, with the reason wstest gave.

Exit status: 0 if no case FAILED and none is missing, else 1.
"""

import collections
import glob
import json
import os
import sys

GRADES = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def load(path):
    with open(path) as f:
        return json.load(f)


def one_line(text, width=140):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def case_key(case_id):
    """Sort 9.10.2 after 9.2.1: numerically, part by part."""
    return [int(part) if part.isdigit() else part for part in case_id.split(".")]


def main(report_dir, agent):
    selected = load(os.path.join(report_dir, "cases.json"))  # [[id, description], ...]
    description = dict(selected)
    expected = sorted(description, key=case_key)

    results = {}
    for index in glob.glob(os.path.join(report_dir, "*", "index.json")):
        for case_id, result in load(index).get(agent, {}).items():
            result = dict(result)
            detail = os.path.join(os.path.dirname(index), result.get("reportfile", ""))
            if os.path.isfile(detail):
                full = load(detail)
                result["why"] = full.get("result", "")
                result["why_close"] = full.get("resultClose", "")
            results[case_id] = result

    missing = [c for c in expected if c not in results]
    graded = [c for c in expected if c in results]
    behavior = collections.Counter(results[c]["behavior"] for c in graded)
    closing = collections.Counter(results[c]["behaviorClose"] for c in graded)

    print(f"## Autobahn|Testsuite: `{agent}`\n")
    print(f"{len(expected)} cases selected (12.* and 13.* left out), "
          f"{len(graded)} graded, {len(missing)} missing.\n")
    print("| behavior | cases |\n|---|---|")
    for grade in GRADES + sorted(set(behavior) - set(GRADES)):
        print(f"| {grade} | {behavior.get(grade, 0)} |")
    if missing:
        print(f"| missing (group timed out, or no report) | {len(missing)} |")
    print("\n| closing behavior | cases |\n|---|---|")
    for grade, count in closing.most_common():
        print(f"| {grade} | {count} |")

    print("\n### Not OK\n")
    noted = [c for c in graded
             if results[c]["behavior"] != "OK" or results[c]["behaviorClose"] != "OK"]
    if not noted:
        print("none")
    for c in noted:
        r = results[c]
        print(f"- **{c}** {r['behavior']}, closing {r['behaviorClose']}, "
              f"close code sent {r.get('remoteCloseCode')}: {one_line(description[c], 90)}  \n"
              f"  {one_line(r.get('why') or r.get('why_close'))}")
    if missing:
        print("\n### Missing\n")
        print(", ".join(missing))

    codes = collections.Counter(str(results[c].get("remoteCloseCode")) for c in graded)
    print("\nClose codes the server sent (None: no Close frame, or a Close without a code): "
          + ", ".join(f"{code} × {n}" for code, n in codes.most_common()))
    nine = [c for c in graded if c.startswith("9.")]
    if nine:
        seconds = sum(results[c].get("duration", 0) for c in nine) / 1000
        print(f"\nThe 9.* cases (large messages, many messages) took {seconds:.1f} s in all.")
    groups = os.path.join(report_dir, "groups.tsv")
    if os.path.isfile(groups):
        print("\n```")
        with open(groups) as f:
            print(f.read().rstrip())
        print("```")
    return 1 if behavior.get("FAILED", 0) or missing else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
