"""A Flower Grid inside one process: the real ClientApp answers each message, no Ray, no SuperLink.

For studies that run many small federations (``simulations.defenses``): a
``flwr run`` costs ~15-20 s of start-up each, this costs nothing. Each node
has its own Context (partition id, num-partitions, run config) as a SuperNode
would give it; a ClientApp exception becomes an error reply, as in Flower's
simulation. tests/flower_grid.py is the test suite's variant (with injected
client failures).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity


class InProcessGrid(Grid):
    def __init__(self, client_app: ClientApp, num_nodes: int, run_config: dict) -> None:
        self.client_app = client_app
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1  # Flower stamps messages with it
        self.contexts = {
            1000 + 37 * p: Context(run_id=1, node_id=1000 + 37 * p, node_config={"partition-id": p, "num-partitions": num_nodes},
                                   state=RecordDict(), run_config=dict(run_config))
            for p in range(num_nodes)
        }
        self._run = Run.create_empty(run_id=1)  # Flower's legacy client manager (SecAgg+) reads grid.run.run_id

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content=content, message_type=message_type, dst_node_id=dst_node_id, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages):
        raise NotImplementedError("use send_and_receive")

    def pull_messages(self, message_ids):
        raise NotImplementedError("use send_and_receive")

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            msg = copy.deepcopy(msg)  # each node gets its own copy, as over a wire (SecAgg+ sends one content to all, and its mod edits it)
            try:
                reply = self.client_app(msg, self.contexts[msg.metadata.dst_node_id])
            except Exception as exc:  # noqa: BLE001 - as Flower's simulation: a client error is a reply
                reply = Message(Error(code=1, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
            replies.append(reply)
        return replies


def run_in_process(server_main, client_app: ClientApp, run_config: dict, num_nodes: int) -> None:
    """Run ``server_main`` (a ServerApp's main) against ``num_nodes`` in-process clients."""
    grid = InProcessGrid(client_app, num_nodes, run_config)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=dict(run_config)))
