-- Conference, parking and paging extensions never register phones. Earlier versions
-- gave them SIP credentials anyway: those are cleared (empty HA1s mean "no
-- credentials"), and devices that registered with them end now (lapsed ones as expired,
-- the rest as unregistered), so a restart does not bring their bindings back.
UPDATE device
SET end_reason = CASE
        WHEN expires_at <= CAST(strftime('%s', 'now') AS INTEGER) * 1000 THEN 'expired'
        ELSE 'unregistered'
    END,
    ended_at = MIN(expires_at, CAST(strftime('%s', 'now') AS INTEGER) * 1000)
WHERE ended_at IS NULL
  AND extension_id IN (SELECT id FROM extension WHERE kind <> 'user');

UPDATE extension SET ha1_md5 = '', ha1_sha256 = '' WHERE kind <> 'user';
