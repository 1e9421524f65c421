-- The session's roles (login and current), whether each is a superuser, and which of the roles
-- named in %(roles)s it is a member of (MEMBER: it could SET ROLE to them, inherited or not).
SELECT r.rolname, r.rolsuper,
       array(SELECT p FROM unnest(%(roles)s::text[]) AS p WHERE pg_has_role(r.oid, p, 'MEMBER')) AS powers
FROM pg_roles r
WHERE r.rolname IN (session_user, current_user)
