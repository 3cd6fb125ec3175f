"""The onshore clearing-house dialect: CIPS for payments, the onshore depositories for bonds.

- identifiers: BIC + 12-digit CNAPS bank code (`ClrSysId/Cd` = CNAPS), from the directory;
- character set: any Unicode in free text (Chinese names and remittance information);
- header: `Fr` = the gateway, `To` = the CIPS system BIC (configuration `onshore.system_bic`),
  or the original sender for answers that go back to it;
- profiles: schemas/onshore/.
"""

from gateway.codec.context import Dialect

DIALECT = Dialect(
    side="onshore", clearing_system="CNAPS", latin_only=False, securities_flow="southbound"
)
