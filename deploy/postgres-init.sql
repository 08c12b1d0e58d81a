-- The Prefect server keeps its own database beside Huhang's.
CREATE DATABASE prefect OWNER huhang;
