"""nbgrader's settings for the course's exercises (https://nbgrader.readthedocs.io); run nbgrader from this folder.

The assignments' source is exercises/: one folder per lesson, holding its exercise notebook with the solutions
between `### BEGIN SOLUTION` and `### END SOLUTION`. Everything nbgrader makes (the student versions in
build/course/release/, submissions, autograded copies, the gradebook) goes under build/course/, which git ignores.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821 (nbgrader defines it when it reads this file)
c.CourseDirectory.course_id = "ftlab"
c.CourseDirectory.root = os.path.join(HERE, "build", "course")
c.CourseDirectory.source_directory = os.path.join(HERE, "exercises")
# A cell may build a course model that no lesson has cached yet (the base model takes about 2 minutes).
c.Execute.timeout = 900
