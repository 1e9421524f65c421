-- The settings health part: SKELETON, being written.
SELECT 1 AS placeholder WHERE false
