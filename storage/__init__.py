"""The archive core: original objects, the SQL index, and the audit log.

Never imports the protocol layers (``pacs``, ``viewer``) or their libraries.
"""

__version__ = "0.1.0"
