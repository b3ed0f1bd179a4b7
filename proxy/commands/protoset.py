"""``h2scope protoset``: a gRPC server's schema, fetched by server reflection.

For ``--protoset`` without the ``.proto`` files: the server's reflection
service (``grpc.reflection.v1``, else ``v1alpha``) lists its services and the
files that define them; they are written as one FileDescriptorSet (mode 0600
like every file h2scope writes about traffic), the file ``protoc
--descriptor_set_out`` would have written. See docs/ui.md and
proxy/reflection.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  h2scope protoset http://127.0.0.1:50051 -o api.pb        a local h2c server
  h2scope protoset https://api.example.com -o api.pb       TLS, verified
  h2scope run --mode reverse:http://127.0.0.1:50051 --protoset api.pb
  h2scope decode --protobuf --protoset api.pb --type /pkg.Service/Method HEX

The server must have reflection enabled (grpc_reflection's
enable_server_reflection, grpc-go's reflection.Register, ...); without it,
compile the .proto files: protoc --descriptor_set_out=api.pb --include_imports
api.proto.

exit status: 0 written, 1 the server could not be asked or did not answer,
2 a bad option.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "protoset", allow_abbrev=False, parents=[common],
        help="fetch a gRPC server's schema by server reflection, as a protoset file",
        description="Ask a gRPC server's reflection service for its services and the "
        "files that define them, and write them as a FileDescriptorSet for --protoset.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="the server: http://HOST:PORT (h2c) or https://HOST:PORT")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                   help="the protoset to write")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the server's certificate")
    p.add_argument("--upstream-ca", type=Path, metavar="FILE",
                   help="trust this CA (PEM) for the server's certificate too (as for "
                   "h2scope run and replay)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for each answer (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from certs.files import create_private
    from proxy.cli import EXIT_FAILURE, UsageError
    from proxy.protoset import Protoset
    from proxy.reflection import ReflectionError, fetch_protoset

    if args.timeout <= 0:
        raise UsageError("--timeout must be more than 0")
    try:
        data, services, missing = fetch_protoset(
            args.url, insecure=args.insecure,
            cafile=str(args.upstream_ca) if args.upstream_ca else None, timeout=args.timeout)
    except ReflectionError as exc:
        print(f"h2scope protoset: {args.url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    schema = Protoset()
    schema.add(data)
    try:
        fd = create_private(args.output)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    with open(fd, "wb") as f:
        f.write(data)
    print(f"wrote {args.output}: {len(services)} service{'s' * (len(services) != 1)}, "
          f"{len(schema.methods)} method{'s' * (len(schema.methods) != 1)}, "
          f"{len(schema.messages)} message types")
    for path in sorted(schema.methods):
        request, response = schema.methods[path]
        print(f"  {path}  ({request}) → ({response})")
    for note in missing:
        print(f"not described: {note}", file=sys.stderr)
    return 0
