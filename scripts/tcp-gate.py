#!/usr/bin/env python3
"""A TCP gate: passes every connection on --listen to --to, both ways.

The local stack puts it in front of the broker, so that stopping the gate
is a broker outage as Kafka clients see it (new connections refused, open
ones dropped) while the broker itself, and its in-memory log, stays up.

With --tls-cert and --tls-key it terminates TLS: clients speak TLS to the
gate, and the broker (which cannot) gets the plaintext. With
--tls-client-ca as well it asks every client for a certificate signed by
that CA (mutual TLS). The tests put one in front of the broker to check
floe's TLS settings against a real handshake.

With --delay-ms every chunk passed towards the client waits that long
first: a slow server (the chaos campaign's slow S3). With --http-503 it
passes nothing: every HTTP request gets `503 Service Unavailable` (an
S3 server that answers with errors).
"""
import argparse
import asyncio
import signal
import ssl


async def pipe(reader, writer, delay=0.0):
    try:
        while data := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def refuse(reader, writer):
    """Answers every HTTP request on the connection with a 503."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if length:
                await reader.readexactly(length)
            body = b"<Error><Code>ServiceUnavailable</Code><Message>gate</Message></Error>"
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(listen, to, tls=None, delay=0.0, http_503=False):
    host, port = listen.rsplit(":", 1)
    to_host, to_port = to.rsplit(":", 1)
    open_pipes = set()

    async def serve(client_reader, client_writer):
        if http_503:
            await refuse(client_reader, client_writer)
            return
        try:
            broker_reader, broker_writer = await asyncio.open_connection(to_host, int(to_port))
        except OSError:
            client_writer.close()
            return
        pipes = [
            asyncio.create_task(pipe(client_reader, broker_writer)),
            asyncio.create_task(pipe(broker_reader, client_writer, delay)),
        ]
        open_pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for task in pipes:
                task.cancel()
                open_pipes.discard(task)
            client_writer.close()
            broker_writer.close()

    server = await asyncio.start_server(serve, host, int(port), reuse_address=True, ssl=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"gate {listen} -> {to}", flush=True)
    await stop.wait()
    server.close()
    for task in list(open_pipes):
        task.cancel()
    await asyncio.sleep(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="host:port to accept on")
    parser.add_argument("--to", required=True, help="host:port to pass connections to")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) to terminate TLS with")
    parser.add_argument("--tls-key", help="its PEM private key")
    parser.add_argument("--tls-client-ca", help="require client certificates signed by this PEM CA")
    parser.add_argument("--delay-ms", type=int, default=0, help="delay each reply chunk this long")
    parser.add_argument("--http-503", action="store_true", help="answer every HTTP request with 503")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.tls_client_ca)
    asyncio.run(main(args.listen, args.to, tls, args.delay_ms / 1000, args.http_503))
