"""The platform running: the embedded pipeline and its service, the journal, observability,
and the scale-out engine's composition (forwarders and Faust workers)."""
