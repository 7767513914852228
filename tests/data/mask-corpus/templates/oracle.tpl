= ora-rownum
T SELECT * FROM (SELECT employee_id, salary FROM employees ORDER BY salary DESC) WHERE ROWNUM <= {U}
= ora-fetch-first
T SELECT employee_id, last_name FROM employees WHERE department_id = {U} ORDER BY last_name FETCH FIRST {U} ROWS ONLY
= ora-to-date
T SELECT order_id FROM orders WHERE order_date >= TO_DATE({S}, {S}) AND status = {S}
= ora-nvl
T SELECT NVL(commission_pct, {N}) FROM employees WHERE job_id = {S}
= ora-dual
T SELECT {S} || first_name FROM employees WHERE employee_id = {U}
= ora-sysdate-arith
T SELECT employee_id FROM employees WHERE hire_date > SYSDATE - {U}
= ora-binds
T SELECT last_name FROM employees WHERE employee_id = :emp_id AND salary > {N}
= ora-numbered-binds
T UPDATE employees SET salary = :1 WHERE employee_id = :2 AND department_id = {U}
= ora-quoted-upper
T SELECT "EMPLOYEE_ID", "FIRST_NAME" FROM "HR"."EMPLOYEES" WHERE "LAST_NAME" = {S}
= ora-insert-select-dual
T INSERT INTO regions (region_id, region_name) SELECT {U}, {S} FROM dual
= ora-merge
T MERGE INTO bonuses b USING (SELECT employee_id, salary FROM employees WHERE department_id = {U}) e ON (b.employee_id = e.employee_id) WHEN MATCHED THEN UPDATE SET b.bonus = e.salary * {N}
= ora-connect-by
T SELECT employee_id, manager_id, LEVEL FROM employees START WITH employee_id = {U} CONNECT BY PRIOR employee_id = manager_id
