= pg-limit-offset
T SELECT id, title FROM posts WHERE author_id = {U} ORDER BY created_at DESC LIMIT {U} OFFSET {U}
= pg-django-quoted
T SELECT "auth_user"."id", "auth_user"."username" FROM "auth_user" WHERE "auth_user"."email" = {S} LIMIT {U}
= pg-jsonb-arrow
T SELECT id FROM events WHERE payload->>{S} = {S} AND (payload->{S})::int > {N}
= pg-cast-date
T SELECT count(*) FROM orders WHERE created_at::date = {S}::date
= pg-interval
T SELECT id FROM jobs WHERE started_at < now() - interval {S}
= pg-any-array
T SELECT id FROM users WHERE id = ANY(ARRAY[{L}])
= pg-returning
T INSERT INTO tags (name, color) VALUES {R:2} RETURNING id
= pg-on-conflict
T INSERT INTO counters (key, n) VALUES ({S}, {U}) ON CONFLICT (key) DO UPDATE SET n = counters.n + EXCLUDED.n
= pg-ilike
T SELECT id FROM customers WHERE name ILIKE {S} LIMIT {U}
= pg-dollar-param
T SELECT * FROM accounts WHERE owner_id = $1 AND currency = {S}
= pg-rails-select
T SELECT "orders".* FROM "orders" WHERE "orders"."user_id" = {U} AND "orders"."state" IN ({LS}) ORDER BY "orders"."id" ASC LIMIT {U}
= pg-generate-series
T SELECT g FROM generate_series({U}, {U}) AS g WHERE g % {U} = {U}
