"""The domain core of campaigns: pure functions (scheduling and CPM, templates, the Gantt chart,
slot allocation). The retail calendar itself is shared reference data in shared/calendar/."""
