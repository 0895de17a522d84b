-- 0004_accounts: one canonical email per account, and email changes that
-- need proof.
--
-- The application stores email in its canonical form (Unicode NFC, then
-- case-folded, see src/auth/validate.c) and looks it up through the existing
-- unique index on lower(email). Rows written before are brought to NFC and
-- lower case here (PostgreSQL has no case folding; for the addresses that
-- existed this is the same except for a few scripts), unless that would
-- collide with another live account, which then keeps its spelling.
-- pending_email holds an address that waits for its confirmation code
-- (purpose change_email).
ALTER TABLE users ADD COLUMN pending_email text
	CHECK (pending_email IS NULL OR length(pending_email) BETWEEN 3 AND 254);

DO $$
BEGIN
	IF current_setting('server_encoding') = 'UTF8' THEN
		-- of several rows with one canonical form only the first (by id) moves,
		-- and none onto an address another live row has
		UPDATE users u SET email = lower(normalize(u.email, NFC))
		WHERE u.email <> lower(normalize(u.email, NFC))
		  AND NOT EXISTS (SELECT 1 FROM users o
		                  WHERE o.id <> u.id AND o.deleted_at IS NULL
		                    AND (lower(o.email) = lower(normalize(u.email, NFC))
		                         OR (o.id < u.id AND lower(normalize(o.email, NFC))
		                                             = lower(normalize(u.email, NFC)))));
	ELSE -- normalize() needs a UTF8 database; lower case at least
		UPDATE users u SET email = lower(u.email) WHERE u.email <> lower(u.email)
		  AND NOT EXISTS (SELECT 1 FROM users o WHERE o.id <> u.id AND o.deleted_at IS NULL
		                  AND lower(o.email) = lower(u.email));
	END IF;
END;
$$;

ALTER TABLE otps DROP CONSTRAINT otps_purpose_check;
ALTER TABLE otps ADD CONSTRAINT otps_purpose_check
	CHECK (purpose IN ('login', 'verify_email', 'reset_password', 'change_email'));
