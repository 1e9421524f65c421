-- The session's roles (login and current): whether each is, or may become (SET ROLE), a superuser,
-- and which of the roles named in %(roles)s it is a member of (MEMBER: inherited or not). CREATEROLE,
-- its own or a role's it may become, counts too: before 16 it may grant itself any of those roles.
SELECT r.rolname,
       r.rolsuper OR EXISTS (
         SELECT FROM pg_roles s WHERE s.rolsuper AND pg_has_role(r.oid, s.oid, 'MEMBER')
       ) AS superuser,
       array(SELECT p FROM unnest(%(roles)s::text[]) AS p WHERE pg_has_role(r.oid, p, 'MEMBER'))
       || CASE WHEN EXISTS (
            SELECT FROM pg_roles c WHERE c.rolcreaterole AND pg_has_role(r.oid, c.oid, 'MEMBER')
          ) THEN ARRAY['CREATEROLE'] ELSE ARRAY[]::text[] END AS powers
FROM pg_roles r
WHERE r.rolname IN (session_user, current_user)
