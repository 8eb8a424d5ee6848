#!/usr/bin/env python3
"""An independent check of modelgate's audit hash chain (docs/audit.md, "Tamper evidence").

Written from the documentation, not from the TypeScript verifier, so that an
auditor can recompute the chain without trusting modelgate's code. Reads the
database through `psql` (read-only queries) and prints the first broken link
or "ok". Standard library only.

    python3 scripts/audit-chain-verify.py postgresql://auditor@db/modelgate

It walks the whole chain from the latest retention checkpoint (or the first
session) in pages of 500 sessions.
"""
import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone

GENESIS = "0" * 64
META_V1 = ["id", "receivedAt", "firstByteAt", "finishedAt", "subjectId", "subjectEmail", "subjectGroups",
           "authMethod", "clientIp", "userAgent", "connection", "model", "agentId", "endpoint", "method",
           "decision", "policyIds", "reason", "responseStatus", "latencyMs", "ttfbMs", "details"]
META_V2 = META_V1 + ["subjectName", "promptTokens", "completionTokens", "totalTokens", "ttftMs"]
# Per chain_version: the members of the metadata object and the link's first line.
VERSIONS = {1: (META_V1, "modelgate-audit-chain-v1"), 2: (META_V2, "modelgate-audit-chain-v2")}
TIMES = {"receivedAt", "firstByteAt", "finishedAt"}


def query(url, sql):
    out = subprocess.run(["psql", url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True).stdout.strip()
    return json.loads(out) if out else None


def canonical(value):
    # Same text as RFC 8785 for these rows: integers only, names inside the BMP.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def iso_ms(text):
    moment = datetime.fromisoformat(text).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def main(url):
    checkpoint = query(url, "SELECT json_build_object('seq', chain_seq, 'hash', hash) FROM audit_checkpoints "
                            "WHERE kind = 'chain' ORDER BY chain_seq DESC LIMIT 1")
    horizon = query(url, "SELECT to_json(max(purged_before)) FROM audit_checkpoints WHERE kind = 'content'")
    expected_seq, expected_prev = (checkpoint["seq"] + 1, checkpoint["hash"]) if checkpoint else (1, GENESIS)
    checked = 0
    while True:
        rows = query(url, f"""
            SELECT json_agg(r ORDER BY r.chain_seq) FROM (
              SELECT s.*,
                (SELECT row_to_json(c) FROM session_contents c WHERE c.session_id = s.id) AS content,
                (SELECT json_agg(e ORDER BY e.seq) FROM session_events e WHERE e.session_id = s.id) AS events
              FROM sessions s WHERE s.chain_seq >= {int(expected_seq)} ORDER BY s.chain_seq LIMIT 500) r""")
        if not rows:
            break
        for row in rows:
            where = f"session {row['id']} (chain_seq {row['chain_seq']})"
            if row["chain_seq"] != expected_seq:
                return f"broken at {where}: missing_link, expected {expected_seq}"
            if row["prev_hash"] != expected_prev:
                return f"broken at {where}: prev_hash_mismatch"
            if row["chain_version"] not in VERSIONS:
                return f"broken at {where}: hash_mismatch (metadata): unknown chain version {row['chain_version']}"
            members, tag = VERSIONS[row["chain_version"]]
            column_of = lambda name: "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)  # noqa: E731
            # A column a version's record leaves out must be null in its sessions.
            if any(row[column_of(name)] is not None for name in META_V2 if name not in members):
                return f"broken at {where}: hash_mismatch (metadata): a column version {row['chain_version']} does not cover is set"
            meta = {}
            for name in members:
                value = row[column_of(name)]
                meta[name] = iso_ms(value) if name in TIMES and value is not None else value
            content, events = row["content"], row["events"] or []
            purged = content is None and not events and horizon is not None and \
                datetime.fromisoformat(row["received_at"]) < datetime.fromisoformat(horizon)
            if purged:
                content_digest = row["content_digest"]
            else:
                content_digest = sha256(canonical({
                    "content": None if content is None else {
                        "requestBody": content["request_body"], "responseBody": content["response_body"],
                        "truncated": content["truncated"]},
                    "events": [{"seq": e["seq"], "offsetMs": e["offset_ms"], "data": e["data"]} for e in events],
                }))
                if content_digest != row["content_digest"]:
                    return f"broken at {where}: hash_mismatch (content)"
            link = "\n".join([tag, str(row["chain_seq"]), row["prev_hash"],
                              sha256(canonical(meta)), content_digest])
            if sha256(link) != row["hash"]:
                return f"broken at {where}: hash_mismatch (metadata)"
            checked += 1
            expected_seq += 1
            expected_prev = row["hash"]
    head = query(url, "SELECT json_build_object('seq', chain_seq, 'hash', hash) FROM audit_chain_head WHERE id = 1")
    if head["seq"] != expected_seq - 1 or head["hash"] != expected_prev:
        return f"broken at the end: the chain head is ({head['seq']}, {head['hash']}), the last session checked {expected_seq - 1}"
    return f"ok: {checked} sessions, last chain_seq {expected_seq - 1}, head hash {expected_prev}"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    result = main(sys.argv[1])
    print(result)
    sys.exit(0 if result.startswith("ok") else 1)
