"""The station software of an island service point, as the demo runs it.

It files the transactions a village service point handles in a day, through the station's local
IPC (examples/python/ferry_client.py): applications for service items, filings by proxy agents on
behalf of citizens (author set), certificate requests, and volunteer hours (a counter). Each call
returns only once ferryd has stored the op durably.
"""

import random

SERVICES = [
    "residence-certificate", "elderly-allowance", "fishing-licence-renewal",
    "household-registration", "medical-insurance-claim", "ferry-fare-subsidy",
]
CITIZENS = ["Chen Ming", "Wang Fang", "Li Hua", "Zhang Wei", "Liu Yang", "Zhou Jie", "Wu Lan",
            "Xu Qiang", "Sun Li", "Hu Jun"]
AGENTS = ["agent:village-clerk", "agent:grid-worker", "agent:neighbourhood-volunteer"]
CERTIFICATES = ["birth", "residence", "no-criminal-record", "kinship"]


def file_day(client, station, count, seed, start=0):
    """Files `count` transactions; returns [{"id", "kind", "key", ...}] in filing order."""
    rng = random.Random(seed)
    filed = []
    for n in range(start, start + count):
        citizen = rng.choice(CITIZENS)
        roll = rng.random()
        author = None
        if roll < 0.45:
            kind = "application.file"
            service = rng.choice(SERVICES)
            key = "application/%s-%05d" % (station, n)
            body = {"set": {"service": service, "applicant": citizen, "status": "filed",
                            "island": station}}
            if rng.random() < 0.4:  # a proxy agent files on the citizen's behalf
                author = rng.choice(AGENTS)
        elif roll < 0.7:
            kind = "certificate.request"
            service = rng.choice(CERTIFICATES)
            key = "certificate-request/%s-%05d" % (station, n)
            body = {"set": {"certificate": service, "applicant": citizen, "status": "requested"}}
        else:
            kind = "volunteer.hours"
            service = None
            key = "volunteer/%s" % citizen.lower().replace(" ", "-")
            body = {"inc": {"hours": rng.randint(1, 4)},
                    "note": "beach clean-up" if rng.random() < 0.5 else "elderly visits"}
        reply = client.submit(kind, key, body, author=author)
        filed.append({"id": reply["id"], "kind": kind, "key": key, "service": service,
                      "author": author})
    return filed
