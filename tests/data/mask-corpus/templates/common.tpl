= app-user-by-email
T SELECT id, email, name, created_at FROM users WHERE email = {S}
= app-user-by-id
T SELECT u.id, u.email FROM users u WHERE u.id = {U}
= app-users-in-list
T SELECT id, name FROM users WHERE id IN ({L})
= app-users-name-in-list
T SELECT id FROM users WHERE name IN ({LS}) AND active = {U}
= app-users-not-in
T SELECT count(*) FROM users WHERE status NOT IN ({LS})
= app-orders-between
T SELECT order_id, total FROM orders WHERE created_at BETWEEN {D} AND {D}
= app-orders-join-customers
T SELECT o.order_id, c.name, o.total FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE o.total > {N} AND c.country = {S}
= app-orders-left-join-group
T SELECT c.customer_id, count(o.order_id) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.customer_id HAVING count(o.order_id) >= {U}
= app-insert-user
T INSERT INTO users (id, email, name) VALUES ({U}, {S}, {S})
= app-insert-audit-rows
T INSERT INTO audit_log (user_id, action, detail) VALUES {R:3}
= app-update-user-name
T UPDATE users SET name = {S}, updated_at = {D} WHERE id = {U}
= app-update-balance
T UPDATE accounts SET balance = balance - {U} WHERE account_id = {U} AND balance >= {U}
= app-update-balance-plus
T UPDATE accounts SET balance = balance + {U} WHERE account_id = {U}
= app-delete-session
T DELETE FROM sessions WHERE session_id = {S}
= app-delete-old-sessions
T DELETE FROM sessions WHERE expires_at < {D}
= app-cte-recent
T WITH recent AS (SELECT customer_id, sum(total) AS spent FROM orders WHERE created_at >= {D} GROUP BY customer_id) SELECT c.name, r.spent FROM recent r JOIN customers c ON c.customer_id = r.customer_id WHERE r.spent > {N}
= app-window-rank
T SELECT employee_id, department_id, salary, rank() OVER (PARTITION BY department_id ORDER BY salary DESC) AS r FROM employees WHERE salary > {N}
= app-window-running-total
T SELECT payment_id, amount, sum(amount) OVER (ORDER BY payment_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM payment WHERE customer_id = {U}
= app-case-expression
T SELECT film_id, CASE WHEN rental_rate < {N} THEN {S} WHEN rental_rate < {N} THEN {S} ELSE {S} END AS band FROM film
= app-like-prefix
T SELECT actor_id, first_name, last_name FROM actor WHERE last_name LIKE {S} ORDER BY last_name
= app-exists-subquery
T SELECT c.customer_id FROM customer c WHERE EXISTS (SELECT {U} FROM rental r WHERE r.customer_id = c.customer_id AND r.return_date IS NULL AND r.rental_date < {D})
= app-in-subquery
T SELECT title FROM film WHERE film_id IN (SELECT film_id FROM film_category WHERE category_id = {U})
= app-union
T SELECT first_name, last_name FROM actor WHERE actor_id = {U} UNION SELECT first_name, last_name FROM customer WHERE customer_id = {U}
= app-arith-expr
T SELECT amount * {N} + {N} AS adjusted FROM payment WHERE amount - {U} > {N}
= app-coalesce
T SELECT coalesce(phone, {S}) AS phone FROM address WHERE address_id = {U}
= app-is-null-and
T SELECT count(*) FROM rental WHERE return_date IS NULL AND staff_id = {U} AND inventory_id <> {U}
= app-numbers-in-identifiers
T SELECT t1.col_2, t2.c3 FROM table_1 t1 JOIN table_2 t2 ON t2.id_1 = t1.id_1 WHERE t1.col_2 = {N} AND t2.c3 = {S}
= app-multi-and-or
T SELECT * FROM inventory WHERE (store_id = {U} OR store_id = {U}) AND film_id = {U}
= app-pgbench-select
T SELECT abalance FROM pgbench_accounts WHERE aid = {U}
= app-pgbench-update-accounts
T UPDATE pgbench_accounts SET abalance = abalance + {N} WHERE aid = {U}
= app-pgbench-update-tellers
T UPDATE pgbench_tellers SET tbalance = tbalance + {N} WHERE tid = {U}
= app-pgbench-update-branches
T UPDATE pgbench_branches SET bbalance = bbalance + {N} WHERE bid = {U}
= app-pgbench-insert-history
T INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({U}, {U}, {U}, {N}, CURRENT_TIMESTAMP)
= app-aggregate-stats
T SELECT store_id, avg(amount), max(amount), min(amount) FROM payment p JOIN staff s ON s.staff_id = p.staff_id WHERE amount > {N} GROUP BY store_id ORDER BY {U} DESC
= app-scientific
T SELECT reading_id FROM sensor_readings WHERE value > {N} AND value < {N}
= app-update-status-in
T UPDATE orders SET status = {S} WHERE order_id IN ({L})
= app-delete-in
T DELETE FROM cart_items WHERE cart_id = {U} AND product_id IN ({L})
= app-select-sales-detail
T SELECT h.SalesOrderID, d.ProductID, d.OrderQty, d.UnitPrice FROM Sales.SalesOrderHeader h JOIN Sales.SalesOrderDetail d ON d.SalesOrderID = h.SalesOrderID WHERE h.CustomerID = {U} AND d.UnitPrice >= {N}
= app-hr-employees-dept
T SELECT e.employee_id, e.last_name, d.department_name FROM employees e JOIN departments d ON d.department_id = e.department_id WHERE e.hire_date > {D} AND d.location_id = {U}
