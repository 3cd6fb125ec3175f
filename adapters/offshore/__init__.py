"""The offshore RTGS dialect: RMB CHATS for payments, CMU for bonds.

- identifiers: BIC + 3-digit Hong Kong bank code (`ClrSysId/Cd` = HKNCC), from the directory;
- character set: printable Latin only; Chinese text is transliterated, kept in SplmtryData or
  refused by the per-field policy in data/charset-policy.toml;
- header: `Fr` = the gateway, `To` = the RMB CHATS system BIC (configuration
  `offshore.system_bic`), or the original sender for answers that go back to it;
- profiles: schemas/offshore/.
"""

from gateway.codec.context import Dialect

DIALECT = Dialect(
    side="offshore", clearing_system="HKNCC", latin_only=True, securities_flow="northbound"
)
