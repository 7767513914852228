= ms-top
T SELECT TOP ({U}) ProductID, Name FROM Production.Product WHERE ListPrice > {N} ORDER BY ListPrice DESC
= ms-top-plain
T SELECT TOP {U} * FROM Person.Person WHERE LastName = {S}
= ms-offset-fetch
T SELECT BusinessEntityID, JobTitle FROM HumanResources.Employee ORDER BY HireDate OFFSET {U} ROWS FETCH NEXT {U} ROWS ONLY
= ms-bracket-select
T SELECT [p].[FirstName], [p].[LastName] FROM [Person].[Person] AS [p] WHERE [p].[BusinessEntityID] = {U}
= ms-ef-params
T SELECT [o].[OrderId], [o].[Total] FROM [Orders] AS [o] WHERE [o].[CustomerId] = @__customerId_0 AND [o].[Status] = {S}
= ms-insert-output
T INSERT INTO dbo.Tags (Name, Color) OUTPUT INSERTED.TagId VALUES {R:2}
= ms-merge
T MERGE INTO dbo.Stock AS t USING (SELECT {U} AS ProductID, {U} AS Qty) AS s ON t.ProductID = s.ProductID WHEN MATCHED THEN UPDATE SET t.Qty = t.Qty + s.Qty WHEN NOT MATCHED THEN INSERT (ProductID, Qty) VALUES (s.ProductID, s.Qty);
= ms-dateadd
T SELECT SalesOrderID FROM Sales.SalesOrderHeader WHERE OrderDate > DATEADD(day, {N}, {D})
= ms-convert
T SELECT CONVERT(varchar({U}), OrderDate, {U}) AS d FROM Sales.SalesOrderHeader WHERE SalesOrderID = {U}
= ms-temp-table
T INSERT INTO #recent (id, name) SELECT TOP ({U}) BusinessEntityID, LastName FROM Person.Person WHERE ModifiedDate > {D}
= ms-nolock
T SELECT COUNT(*) FROM Sales.SalesOrderDetail WITH (NOLOCK) WHERE ProductID = {U} AND UnitPriceDiscount > {N}
= ms-like-nvarchar
T SELECT Name FROM Production.Product WHERE Name LIKE {S} AND Color = {S}
