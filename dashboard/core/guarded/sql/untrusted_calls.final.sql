-- The functions found, each with how the statement reaches it.
SELECT DISTINCT ON (calls.fn)
       format('%%s.%%s(%%s)', p.pronamespace::regnamespace, quote_ident(p.proname),
              pg_get_function_identity_arguments(p.oid)) AS function,
       calls.via
FROM calls JOIN untrusted u ON u.oid = calls.fn JOIN pg_proc p ON p.oid = calls.fn
ORDER BY calls.fn, calls.via
