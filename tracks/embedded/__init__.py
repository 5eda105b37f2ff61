"""Servers the project can run by itself: the embedded default and the test suite's servers."""

from tracks.embedded.nats_cluster import NatsCluster, NodeStatus, stream_leader
from tracks.embedded.nats_server import NatsServer, nats_server_binary
from tracks.embedded.postgres import PostgresServer, postgres_bin_dir
from tracks.embedded.stack import EmbeddedStack, ServerStatus

__all__ = [
    "EmbeddedStack",
    "NatsCluster",
    "NatsServer",
    "NodeStatus",
    "PostgresServer",
    "ServerStatus",
    "nats_server_binary",
    "postgres_bin_dir",
    "stream_leader",
]
