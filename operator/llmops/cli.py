"""The ``llmops`` command: run the operator, generate CRDs, and the programs Jobs run.

llmops run        the operator (kopf with our settings)
llmops crds       print the generated CRD (crds/llmops.io_llmdeployments.yaml)
llmops download   pre-warm the model cache (runs in the download Job)
llmops eval       score a model through its API (runs in the evaluation Job)
llmops gateway    the gateway in front of the engine (runs in every model-server pod)
llmops capture-store  the store of captured requests (the pod `<name>-capture`)
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llmops run", description="Run the llmops operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    parser.add_argument(
        "--liveness-port", type=int, default=8080, help="serve /healthz on this port (0: off)"
    )
    parser.add_argument(
        "--peering", default=None, help="kopf peering name, required with more than one replica"
    )
    parser.add_argument("--standalone", action="store_true", help="no peering (a single replica)")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve the operator's /metrics on this port (0: off)"
    )
    parser.add_argument(
        "--prometheus-url", default=None, help="Prometheus for canary analysis when the spec names none"
    )
    parser.add_argument("--log-format", choices=["plain", "json"], default="plain")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    import os
    import random
    import socket

    import kopf

    import llmops.handlers  # noqa: F401 - registers the handlers
    from llmops import metrics

    # kopf's identity in the peering object, known to the handlers too (llmops.peering).
    identity = os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{random.randbytes(3).hex()}"
    os.environ["LLMOPS_PEERING_ID"] = identity
    # Informers watch each namespace of -n apart (a glob counts once: its namespaces are not
    # known here), all of them with one set of watches otherwise; the client keeps a connection
    # for each watch (llmops.kube.load_client).
    os.environ["LLMOPS_WATCH_SCOPES"] = str(len(args.namespace) or 1)
    if args.prometheus_url:
        os.environ["LLMOPS_PROMETHEUS_URL"] = args.prometheus_url
    if args.metrics_port:
        metrics.serve(args.metrics_port)

    configure_logging(verbose=args.verbose, json_format=args.log_format == "json")
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone or args.peering is None,
        peering_name=args.peering,
        # Replicas need distinct priorities, or kopf pauses every one of them; the highest runs.
        # LLMOPS_PEERING_PRIORITY pins it (tests choose which replica leads); the highest acts.
        priority=int(os.environ.get("LLMOPS_PEERING_PRIORITY") or random.randint(1, 2**31 - 1))
        if args.peering
        else None,
        identity=identity,  # type: ignore[arg-type]  # kopf.run wants its Identity, a NewType of str it does not export
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
    )
    return 0


def configure_logging(verbose: bool, json_format: bool) -> None:
    """kopf's log setup, less its line per handled event unless ``verbose``."""
    import logging

    import kopf

    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if json_format else kopf.LogFormat.FULL)
    # kopf logs "Handler 'llmdeployment_event' succeeded." for every watch event of every
    # LLMDeployment: a line per status write, nothing a user acts on, and a few percent of the
    # operator's CPU with many objects. Its warnings and errors still show.
    logging.getLogger("kopf.objects").setLevel(logging.NOTSET if verbose else logging.WARNING)


def _crds(argv: list[str]) -> int:
    from llmops.api.crd import main as crd_main

    return int(crd_main(argv) or 0)


def _download(argv: list[str]) -> int:
    from llmops.download import main as download_main

    return download_main(argv)


def _eval(argv: list[str]) -> int:
    from llmops.evaluation.main import main as eval_main

    return eval_main(argv)


def _gateway(argv: list[str]) -> int:
    from llmops.gateway.main import main as gateway_main

    return gateway_main(argv)


def _capture_store(argv: list[str]) -> int:
    from llmops.capture_store.main import main as store_main

    return store_main(argv)


COMMANDS = {
    "run": _run,
    "crds": _crds,
    "download": _download,
    "eval": _eval,
    "gateway": _gateway,
    "capture-store": _capture_store,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
