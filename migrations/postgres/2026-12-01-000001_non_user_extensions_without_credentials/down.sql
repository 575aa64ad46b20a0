-- Nothing to undo: the cleared credentials were secrets that cannot be recovered (the
-- schema did not change), and ended device bindings stay ended. A user extension gets
-- a password again by rotating its credentials.
SELECT 1;
