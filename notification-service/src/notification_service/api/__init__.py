"""HTTP routes: the customer's notifications and the operator's dead-letter desk."""
