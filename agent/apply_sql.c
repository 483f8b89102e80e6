/* placeholder until apply_sql lands */
