"""RabbitMQ access: connections across the broker nodes, and the topology."""
