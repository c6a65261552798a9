"""The gateway: REST + SSE + metrics in front of the cluster; stateless."""
