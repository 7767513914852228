= my-limit
T SELECT film_id, title FROM film WHERE rating = {S} ORDER BY title LIMIT {U}
= my-limit-comma
T SELECT film_id FROM film ORDER BY film_id LIMIT {U}, {U}
= my-backtick-select
T SELECT `c`.`customer_id`, `c`.`email` FROM `sakila`.`customer` `c` WHERE `c`.`store_id` = {U} AND `c`.`active` = {U}
= my-on-duplicate
T INSERT INTO counters (k, n) VALUES ({S}, {U}) ON DUPLICATE KEY UPDATE n = n + VALUES(n)
= my-insert-backtick-rows
T INSERT INTO `film_text` (`film_id`, `title`, `description`) VALUES {R:3}
= my-date-add
T SELECT rental_id FROM rental WHERE rental_date > DATE_SUB({D}, INTERVAL {U} DAY)
= my-replace-into
T REPLACE INTO settings (name, value) VALUES ({S}, {S})
= my-update-limit
T UPDATE jobs SET state = {S} WHERE state = {S} ORDER BY id LIMIT {U}
= my-placeholder-mix
T SELECT * FROM payment WHERE customer_id = ? AND amount > {N}
= my-json-extract
T SELECT id FROM events WHERE JSON_EXTRACT(payload, {S}) = {S}
= my-regexp
T SELECT title FROM film WHERE title REGEXP {S}
= my-user-var
T SELECT @rownum := @rownum + {U} AS rn, name FROM category WHERE name <> {S}
