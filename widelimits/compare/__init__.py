"""Comparisons of finite-width runs with their infinite-width limits (deviations vs width,
fitted exponents, trajectories). This subpackage is empty in 0.1.0; see the CHANGELOG."""

__all__: list[str] = []
