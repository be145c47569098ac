"""The test suite's in-memory Flower Grid: ``server.inprocess_grid.InProcessGrid`` (the real
ClientApp answers each node, no Ray) plus what tests need: every message sent is kept
(``sent``), and chosen partitions crash on 'train' so failure handling can be tested.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message
from flwr.clientapp import ClientApp

from server.inprocess_grid import InProcessGrid


class InMemoryGrid(InProcessGrid):
    def __init__(self, client_app: ClientApp, num_nodes: int, run_config: dict,
                 fail_partitions: set[int] = frozenset()) -> None:
        super().__init__(client_app, num_nodes, run_config)
        self.fail_partitions = set(fail_partitions)
        self.sent: list[Message] = []
        crashing = self.client_app

        def client(msg: Message, context) -> Message:
            if context.node_config["partition-id"] in self.fail_partitions and msg.metadata.message_type == "train":
                raise RuntimeError("client crashed (injected by the test)")
            return crashing(msg, context)

        self.client_app = client

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        self.sent.extend(messages)
        return super().send_and_receive(messages, timeout=timeout)
