"""The ingest room: from received bytes to an indexed instance (DESIGN.md "Storing an instance").

The checks before an acknowledgement (:mod:`.admission`), the intake where acknowledged
objects wait (:mod:`.intake`), the indexer process that drains it (:mod:`.indexer`), and
the index transaction of one or many stores (:mod:`.index_writer`).
"""
