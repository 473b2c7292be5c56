"""Training dynamics in the infinite-width limits (kernel gradient flow, DMFT) and jit/vmap
simulation of finite networks. This subpackage is empty in 0.1.0; see the CHANGELOG."""

__all__: list[str] = []
