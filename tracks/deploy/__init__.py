"""What a deployment needs that the code knows: NATS users with least-privilege permissions."""

from tracks.deploy.permissions import NatsUser, Permissions, deployment_users, to_conf, to_json

__all__ = ["NatsUser", "Permissions", "deployment_users", "to_conf", "to_json"]
