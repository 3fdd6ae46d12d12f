"""A tiny DNS server for the demo: answers every A question with 192.0.2.53, over UDP.

python -m opsmedic.cli.demo.dns_server --address 127.0.83.1 --port 5353
"""

from __future__ import annotations

import argparse
import socket

import dns.exception
import dns.message
import dns.rdatatype
import dns.rrset

ANSWER = "192.0.2.53"


def serve(address: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, port))
        while True:
            data, peer = sock.recvfrom(4096)
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue  # not DNS: a real server drops it too
            reply = dns.message.make_response(query)
            question = query.question[0] if query.question else None
            if question is not None and question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(question.name, 5, "IN", "A", ANSWER))
            sock.sendto(reply.to_wire(), peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.address, args.port)


if __name__ == "__main__":
    main()
