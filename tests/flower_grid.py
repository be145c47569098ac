"""An in-memory Flower Grid: runs the real ClientApp for each node, no Ray.

Each node has its own Context (partition id, num-partitions, run config),
exactly as a SuperNode would give it. A ClientApp exception becomes an error
reply, as in Flower's simulation, so failure handling can be tested.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity


class InMemoryGrid(Grid):
    def __init__(self, client_app: ClientApp, num_nodes: int, run_config: dict, fail_partitions: set[int] = frozenset()) -> None:
        self.client_app = client_app
        # Flower stamps new messages with the running task's identity
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
        self.fail_partitions = set(fail_partitions)
        # node ids are arbitrary, like Flower's random ones; partitions are 0..n-1
        self.contexts = {
            1000 + 37 * p: Context(run_id=1, node_id=1000 + 37 * p, node_config={"partition-id": p, "num-partitions": num_nodes},
                                   state=RecordDict(), run_config=dict(run_config))
            for p in range(num_nodes)
        }
        self.sent: list[Message] = []
        self._run = None

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
            self.sent.append(msg)
            context = self.contexts[msg.metadata.dst_node_id]
            try:
                if context.node_config["partition-id"] in self.fail_partitions and msg.metadata.message_type == "train":
                    raise RuntimeError("client crashed (injected by the test)")
                reply = self.client_app(msg, context)
            except Exception as exc:  # noqa: BLE001 - mirror Flower: a client error is a reply
                reply = Message(Error(code=1, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
            replies.append(reply)
        return replies
